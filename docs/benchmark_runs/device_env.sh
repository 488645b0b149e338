# Sourced by the run scripts on the device machine (run H on): the wheels
# carried in .carry/ (mmcv built for the GPU, the OpenMMLab packages and
# their pure-Python dependencies; see ../shared/wheels/gpu) installed into
# /tmp/site afresh (a warm machine keeps an older copy), a stub
# transformers 4.0.0 dist-info (the machine's transformers 5 breaks
# mmpretrain's multimodal imports), and NVLink multicast off for NCCL.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/*.whl > $OUT/pip.log 2>&1 || tail -5 $OUT/pip.log
mkdir -p /tmp/site/transformers-4.0.0.dist-info && printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' > /tmp/site/transformers-4.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
