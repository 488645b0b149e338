"""Deploy folding and the plain ``images -> logits`` view of a classifier."""
import torch.nn as nn


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Re-parameterise every part of ``model`` that supports it (the
    modules' own idempotent ``switch_to_deploy()``); returns ``model``."""
    for module in model.modules():
        if module is not model and hasattr(module, 'switch_to_deploy'):
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
