"""Training hooks that make interrupted runs resumable bit for bit."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def reseed_global_generators(seed: int, step: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators
    from ``(seed, step)``; different steps get independent streams."""
    derived = int(np.random.SeedSequence([seed, step]).generate_state(1)[0])
    random.seed(derived)
    np.random.seed(derived)
    torch.manual_seed(derived)


class _ReseedingIterator:
    """Wraps a training loop's batch iterator: before fetching batch ``i``
    (0-based, counting every fetch, also the ones a resumed loop makes to
    skip used data) the global generators are re-seeded from ``(seed, i)``."""

    def __init__(self, iterator, seed: int):
        self._iterator = iterator
        self._seed = seed
        self._fetched = 0

    def __iter__(self):
        return self

    def __next__(self):
        reseed_global_generators(self._seed, self._fetched)
        self._fetched += 1
        return next(self._iterator)


@HOOKS.register_module()
class ResumableRandomnessHook(Hook):
    """Make ``--resume`` after a crash continue with the random numbers of an
    uninterrupted run.

    mmengine seeds the global generators once per process and does not store
    their state, so after resuming, data augmentation, proposal sampling and
    dropout draw other numbers than the uninterrupted run would have (and an
    iteration-based loop even spends some while skipping used batches). This
    hook re-seeds python, numpy and torch from ``(runner seed, i)`` right
    before training batch ``i`` is fetched (iteration-based loops) or before
    epoch ``i`` starts (epoch-based loops), so the random state only depends
    on the position in training, never on the history of the process.

    With ``randomness=dict(seed=S, deterministic=True)`` a resumed run then
    reproduces the uninterrupted run's losses exactly. DataLoader workers
    seed themselves when they start: for epoch-based loops this needs
    ``persistent_workers=False`` (or ``num_workers=0``), iteration-based
    loops need nothing.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = _ReseedingIterator(
                loop.dataloader_iterator, runner.seed)

    def before_train_epoch(self, runner) -> None:
        iterator = getattr(runner.train_loop, 'dataloader_iterator', None)
        if not isinstance(iterator, _ReseedingIterator):  # EpochBasedTrainLoop
            reseed_global_generators(runner.seed, runner.epoch)
