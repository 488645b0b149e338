"""An orderly end of a (distributed) run: DataLoader workers joined, ranks
met, process group destroyed."""
import torch


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
