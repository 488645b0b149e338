"""The one lazy loader of the package's Triton kernel modules.

``triton`` is an optional dependency: each op family's ``triton_kernels``
module (which imports triton, and whose kernels read ``TRITON_INTERPRET``
when they are defined) is imported here on the first call that wants it,
never at package import time. A module that fails to import (no triton, an
unsupported version) makes :func:`available` False for every device, so the
callers fall back to their torch references. The families' backend
switches (``auto | triton | reference``) share :func:`resolve_backend`.

Each family's kernels are reached in two forms that run the same launch
code: a ``torch.library`` custom op (schema, fake implementation, autograd)
for ``torch.compile``, AOTAutograd and export, which see it as one graph
node; and an ``autograd.Function`` for eager calls (chosen by
``torch.compiler.is_compiling()``), because the custom-op dispatcher's
host cost per call (schema defaults, redispatch, its own autograd wrapper,
for the forward and again for the backward op) is several times that of a
Function, and on small maps the host time, not the kernels, decides the
speed. CUDA graphs capture either form.
"""
import os
from types import ModuleType
from typing import Dict, Optional, Tuple

import torch


def _import_scan():
    from .scan import triton_kernels
    return triton_kernels


def _import_laplace():
    from .laplace import triton_kernels
    return triton_kernels


def _import_wavelet():
    from .wavelet import triton_kernels
    return triton_kernels


def _import_batchnorm():
    from .batchnorm import triton_kernels
    return triton_kernels


_IMPORTERS = {'scan': _import_scan, 'laplace': _import_laplace,
              'wavelet': _import_wavelet, 'batchnorm': _import_batchnorm}
# family -> its module, or False once its import failed
_loaded: Dict[str, object] = {}


def kernels(family: str) -> Optional[ModuleType]:
    """The ``triton_kernels`` module of op ``family`` ('scan', 'laplace',
    'wavelet', 'batchnorm'), imported on first use; None when it cannot be
    imported."""
    if family not in _IMPORTERS:
        raise ValueError(f'Unknown Triton kernel family {family!r}; valid: '
                         f'{", ".join(_IMPORTERS)}')
    if family not in _loaded:
        try:
            _loaded[family] = _IMPORTERS[family]()
        except ImportError:
            _loaded[family] = False
    return _loaded[family] or None


def available(family: str, device: torch.device) -> bool:
    """True when ``family``'s kernels can run on tensors of ``device``: CUDA
    tensors, or CPU tensors when the module was imported under
    ``TRITON_INTERPRET=1`` (its ``INTERPRETED`` flag)."""
    module = kernels(family)
    if module is None:
        return False
    if device.type == 'cuda':
        return True
    return device.type == 'cpu' and module.INTERPRETED


# the backend names of the ops with one Triton path and a torch reference
BACKENDS = ('auto', 'triton', 'reference')


def check_backend(name: Optional[str], env_var: str, what: str,
                  backends: Tuple[str, ...] = BACKENDS) -> str:
    """Validate a backend name of an op ``what`` (None means the
    environment variable ``env_var``, else ``auto``) against ``backends``."""
    source = 'argument'
    if name is None:
        name = os.environ.get(env_var, 'auto') or 'auto'
        source = f'environment variable {env_var}'
    if name not in backends:
        raise ValueError(f'Unknown {what} backend {name!r} (from {source}); '
                         f'valid: {", ".join(backends)}')
    return name


def resolve_backend(family: str, name: Optional[str], env_var: str,
                    what: str, device: torch.device) -> str:
    """The concrete backend ('triton' or 'reference') that ``name`` means
    for ``family``'s op on tensors of ``device``: ``auto`` is ``triton`` for
    CUDA tensors when the kernels import."""
    name = check_backend(name, env_var, what)
    if name == 'auto':
        return ('triton' if device.type == 'cuda' and
                available(family, device) else 'reference')
    if name == 'triton' and not available(family, device):
        raise RuntimeError(
            f'{what} backend "triton" is not available for {device.type} '
            'tensors: it needs the `triton` package and CUDA tensors (CPU '
            'tensors only with TRITON_INTERPRET=1 set before the first '
            'call); use "reference" or "auto"')
    return name


class Switch:
    """The backend switch of one op family (``family``'s kernels, a torch
    reference): the module-level ``triton_available``, ``check_backend``,
    ``resolve_backend`` and ``use_fused`` of each family's package are this
    object's bound methods, so that the rule is written once."""

    def __init__(self, family: str, env_var: str, what: str,
                 backends: Tuple[str, ...] = BACKENDS):
        if family not in _IMPORTERS:
            raise ValueError(f'Unknown Triton kernel family {family!r}; '
                             f'valid: {", ".join(_IMPORTERS)}')
        self.family, self.env_var, self.what = family, env_var, what
        self.backends = backends

    def triton_available(self, device: torch.device) -> bool:
        """True when the family's kernels can run on tensors of
        ``device``."""
        return available(self.family, device)

    def check_backend(self, name: Optional[str]) -> str:
        """Validate a backend name (None means the environment variable,
        else ``auto``)."""
        return check_backend(name, self.env_var, self.what, self.backends)

    def resolve_backend(self, name: Optional[str],
                        device: torch.device) -> str:
        """The concrete backend ('triton' or 'reference') that ``name``
        means for tensors on ``device``."""
        return resolve_backend(self.family, name, self.env_var, self.what,
                               device)

    def use_fused(self, name: Optional[str], device: torch.device) -> bool:
        """Whether an op on ``device`` runs the kernels: never while tracing
        or exporting (exporters and FLOP counters see the reference's
        standard ops), else as the backend resolves."""
        if tracing():
            return False
        return self.resolve_backend(name, device) == 'triton'


def tracing() -> bool:
    """True while a tracer or exporter records the ops (``torch.jit.trace``
    and the FLOP counters built on it, ONNX export, ``torch.export``): the
    ops then run their torch references, so that exporters and counters see
    standard ops."""
    exporting = getattr(torch.compiler, 'is_exporting', None)
    return (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            or bool(exporting and exporting()))
