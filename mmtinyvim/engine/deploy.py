"""Deploy folding and the plain ``images -> logits`` view of a classifier."""
import torch.nn as nn


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Re-parameterise ``model`` and every part of it that supports it (the
    modules' own idempotent ``switch_to_deploy()``; a backbone passed
    alone is folded too); returns ``model``."""
    for module in model.modules():
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
    return model


class ClassifierLogits(nn.Module):
    """An mmpretrain classifier as a plain ``images -> logits`` module (for
    export, benchmarks, CUDA graphs)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, images):
        return self.classifier(images, mode='tensor')
