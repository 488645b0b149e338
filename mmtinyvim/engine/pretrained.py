"""The missing-pretrained-weights check, run when training starts.

mmengine's ``Runner`` builds the model in ``__init__`` and the datasets at
the start of ``train()`` (the train loop builds its dataloader); the
backbones load their ``Pretrained`` weights only later, in
``_init_model_weights``. No hook runs before the datasets are built, and
building the model is too early: ``tools/test.py``, ``get_flops`` and the
image demo build the same config without the ImageNet file (their weights
come from a full checkpoint, or none are needed). So :func:`install` wraps
``Runner.train`` to call :func:`mmtinyvim.models.pretrained.
check_pretrained_files` first: one :class:`MissingPretrainedError` before
any dataset is built, for our ``tools/train.py`` and for mmdet's, mmseg's
and mmpretrain's own (they import ``mmtinyvim`` through the config's
``custom_imports``).
"""
import functools

from mmengine.runner import Runner

from ..models.pretrained import check_pretrained_files


def install() -> None:
    """Wrap ``Runner.train`` once (idempotent)."""
    train = Runner.train
    if getattr(train, '_mmtinyvim_checks_pretrained', False):
        return

    @functools.wraps(train)
    def checked_train(self, *args, **kwargs):
        check_pretrained_files(self.model)
        return train(self, *args, **kwargs)

    checked_train._mmtinyvim_checks_pretrained = True
    Runner.train = checked_train
