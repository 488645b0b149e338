"""The process group of a distributed run on CPU, and an orderly end of a
(distributed) run: DataLoader workers joined, ranks met, process group
destroyed."""
import torch


def init_cpu_process_group(cfg):
    """mmengine 0.10.7 binds every process started by torchrun to a CUDA
    device, which fails without one. On such a machine the gloo process
    group is started here, from torchrun's environment, and the Runner
    finds it ready (``tools/train.py``, ``tools/test.py``)."""
    if (cfg.launcher == 'pytorch' and not torch.cuda.is_available()
            and not torch.distributed.is_initialized()):
        torch.distributed.init_process_group(
            backend=cfg.env_cfg.dist_cfg.get('backend', 'gloo'))


def _worker_iterators(runner):
    """The live multi-process DataLoader iterators of the runner's loops."""
    found = []
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        if loop is None or isinstance(loop, dict):
            continue
        for holder in (getattr(loop, 'dataloader_iterator', None),
                       getattr(loop, 'dataloader', None)):
            iterator = getattr(holder, '_iterator', None)
            if iterator is not None and hasattr(iterator,
                                                '_shutdown_workers'):
                found.append((holder, iterator))
    return found


def teardown_distributed(runner=None, barrier=True):
    """End a run in order: join the DataLoader worker processes, wait for
    every rank (``barrier``, only after a successful run: after an error the
    other ranks may never arrive) and destroy the process group, so that no
    communication thread is left running when the interpreter exits (gloo's
    threads otherwise abort the process: ``terminate called without an
    active exception``). Safe to call without a runner or process group."""
    if runner is not None:
        for holder, iterator in _worker_iterators(runner):
            iterator._shutdown_workers()
            try:
                holder._iterator = None
            except AttributeError:
                pass
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        try:
            if barrier:
                dist.barrier()
        finally:
            dist.destroy_process_group()
