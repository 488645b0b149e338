#!/usr/bin/env bash
# Distributed training with torchrun; the task follows the config.
#   tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# Several nodes: NNODES, NODE_RANK, MASTER_ADDR and PORT as for torchrun.
# Without CUDA each process runs on CPU and the backend falls back to gloo.
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
# checked before torchrun spawns the processes: a missing file would end
# every one of them with a traceback and torch elastic's ChildFailedError
if [ ! -f "$CONFIG" ]; then
    echo "error: config file not found: $CONFIG (give the path of a config" \
        "file, e.g. configs/maskrcnn_tinyvim_s_coco.py)" >&2
    exit 2
fi
case "$GPUS" in
    ''|*[!0-9]*|0)
        echo "error: GPUS must be a whole number of processes >= 1, got" \
            "'$GPUS' (usage: $0 CONFIG GPUS [train.py options])" >&2
        exit 2 ;;
esac
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
TOOLS=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$TOOLS/..":${PYTHONPATH:-} \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
