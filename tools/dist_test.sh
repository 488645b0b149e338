#!/usr/bin/env bash
# Distributed testing with torchrun; the task follows the config.
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
# Several nodes: NNODES, NODE_RANK, MASTER_ADDR and PORT as for torchrun.
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
# checked before torchrun spawns the processes: a missing file would end
# every one of them with a traceback and torch elastic's ChildFailedError
if [ ! -f "$CONFIG" ]; then
    echo "error: config file not found: $CONFIG (give the path of a config" \
        "file, e.g. configs/maskrcnn_tinyvim_s_coco.py)" >&2
    exit 2
fi
if [ ! -f "$CHECKPOINT" ]; then
    echo "error: checkpoint file not found: $CHECKPOINT" >&2
    exit 2
fi
case "$GPUS" in
    ''|*[!0-9]*|0)
        echo "error: GPUS must be a whole number of processes >= 1, got" \
            "'$GPUS' (usage: $0 CONFIG CHECKPOINT GPUS [test.py options])" >&2
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
    "$TOOLS/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
