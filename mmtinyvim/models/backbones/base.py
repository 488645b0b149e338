"""What the dense Mamba backbones share: argument checking, freezing,
``norm_eval``, the selective-scan backend switch, deployment folding and
strict pretrained loading."""
import os
from abc import abstractmethod
from typing import Callable, Dict, List, Optional, Sequence, \
    Tuple, Type, Union

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...ops.scan import check_backend
from ...utils.checkpoint import safe_torch_load, strict_load, unwrap_state_dict
from ..compat import BaseModule, MMLogger
from ..layers import fuse_modules
from ..pretrained import (MissingPretrainedError, is_remote,
                          missing_pretrained_message)

__all__ = ['MambaBackboneBase', 'rename_prefixes']


class MambaBackboneBase(BaseModule):
    """Base of the dense backbones.

    The constructor checks and stores the common arguments (``arch_name``,
    'custom' for a dict, ``arch_settings``, ``out_indices`` sorted and
    non-negative, ``frozen_stages``, ``norm_eval``, ``drop_path_rate``,
    ``scan_backend``, ``deploy``); the family's constructor then builds its
    layers and ends with ``self._finish_init()``. A family supplies:

    * ``arch_zoo``, ``arch_keys`` (``optional_arch_keys``) and
      :meth:`_check_custom_arch` for ``arch``;
    * ``num_stages`` (what ``frozen_stages`` counts), ``num_outputs`` (what
      ``out_indices`` index) and the wording of out_indices errors;
    * ``scan_mixer_type``: the modules whose ``scan_backend`` follows the
      backbone's (set only through the backbone's ``scan_backend``
      property, never through constructors);
    * :meth:`_stem_and_stages` for freezing;
    * :meth:`_filter_checkpoint` and :meth:`_allowed_missing_keys` for
      loading.

    The network runs as written. Fast evaluation is asked for explicitly:
    ``DeployHook`` in a config's ``custom_hooks`` (a folded copy for
    validation and testing) or :func:`mmtinyvim.engine.for_inference`.
    """

    arch_zoo: Dict[str, dict]
    arch_keys: Tuple[str, ...]
    optional_arch_keys: Tuple[str, ...] = ()
    num_stages: int
    num_outputs: int
    # Wording of out_indices errors: what the indices count, and one of them.
    out_indices_kind = 'stage indices'
    out_index_noun = 'a stage'
    # Named outputs, listed in out_indices errors (None: not listed).
    output_names: Optional[Tuple[str, ...]] = None
    scan_mixer_type: Type[nn.Module]

    def __init__(self,
                 arch: Union[str, dict],
                 out_indices: Union[int, Sequence[int]],
                 frozen_stages: int,
                 norm_eval: bool,
                 drop_path_rate: Optional[float],
                 scan_backend: Optional[str],
                 init_cfg: Optional[Union[dict, List[dict]]]):
        _check_init_cfg(init_cfg)
        super().__init__(init_cfg=init_cfg)
        self.arch_name, self.arch_settings = self._parse_arch(arch)
        self.out_indices = self._parse_out_indices(out_indices)
        if not isinstance(frozen_stages, int) or \
                not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be an int in '
                             f'[-1, {self.num_stages}], got {frozen_stages!r}')
        drop_path_rate = self._resolve_drop_path_rate(drop_path_rate)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(
                f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.drop_path_rate = drop_path_rate
        self.scan_backend = scan_backend
        self.deploy = False

    # ------------------------------------------------------------ arguments

    @classmethod
    def _parse_arch(cls, arch) -> Tuple[str, dict]:
        """(name, settings) of a zoo name (any case) or a custom dict."""
        name = cls.__name__
        if cls.optional_arch_keys:
            keys = (f'the keys {cls.arch_keys} (optional: '
                    f'{cls.optional_arch_keys})')
        else:
            keys = f'exactly the keys {cls.arch_keys}'
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise ValueError(
                    f'Unknown {name} arch {arch!r}; valid: '
                    f'{", ".join(cls.arch_zoo)} (any case) or a dict with '
                    f'{keys}')
            return arch.lower(), dict(cls.arch_zoo[arch.lower()])
        if not isinstance(arch, dict):
            raise TypeError(f'{name} arch must be a name or a dict, got '
                            f'{type(arch).__name__}')
        missing = [k for k in cls.arch_keys if k not in arch]
        unknown = [k for k in arch
                   if k not in cls.arch_keys + cls.optional_arch_keys]
        if missing or unknown:
            raise ValueError(f'Custom {name} arch needs {keys}; missing '
                             f'{missing}, unknown {unknown}')
        return 'custom', cls._check_custom_arch(arch)

    @classmethod
    @abstractmethod
    def _check_custom_arch(cls, arch: dict) -> dict:
        """Check the values of a custom arch (its keys are right); return
        the settings to build from."""

    @classmethod
    def _is_per_stage(cls, value, valid: Callable[[object], bool]) -> bool:
        """Whether ``value`` is a list/tuple of one valid item per stage."""
        return (isinstance(value, (list, tuple)) and
                len(value) == cls.num_stages and all(valid(v) for v in value))

    @classmethod
    def _parse_out_indices(cls, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        n = cls.num_outputs
        valid = f'[-{n}, {n - 1}]'
        if cls.output_names:
            valid += f' over {cls.output_names}'
        if (not isinstance(out_indices, Sequence) or not out_indices or
                not all(isinstance(i, int) for i in out_indices)):
            raise ValueError('out_indices must be an int or a non-empty '
                             f'sequence of ints in {valid}, got '
                             f'{out_indices!r}')
        bad = [i for i in out_indices if not -n <= i < n]
        if bad:
            raise ValueError(f'out_indices {bad} out of range; valid '
                             f'{cls.out_indices_kind} are {valid}')
        resolved = sorted(i % n for i in out_indices)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f'out_indices {out_indices!r} name '
                             f'{cls.out_index_noun} twice')
        return tuple(resolved)

    def _resolve_drop_path_rate(self, drop_path_rate):
        """The rate to check and use; a family may give None a meaning."""
        return drop_path_rate

    # ------------------------------------------------------ scan backend

    @property
    def scan_backend(self) -> Optional[str]:
        """Selective-scan backend of every mixer, see
        :mod:`mmtinyvim.ops.scan`. None is passed on as it is: each scan
        resolves it (``MMTINYVIM_SCAN_BACKEND``, else ``auto``)."""
        return self._scan_backend

    @scan_backend.setter
    def scan_backend(self, name: Optional[str]):
        check_backend(name)
        self._scan_backend = name
        for module in self.modules():
            if isinstance(module, self.scan_mixer_type):
                module.scan_backend = self._scan_backend

    def _finish_init(self) -> None:
        """End of a family's constructor: hand the scan backend to the
        mixers just built and freeze ``frozen_stages``."""
        self.scan_backend = self._scan_backend
        self._freeze_stages()

    # ------------------------------------------------------------ training

    @abstractmethod
    def _stem_and_stages(self) -> List[nn.Module]:
        """The stem, then each stage with the downsampling that leads into
        it: ``frozen_stages = k`` freezes the first ``k + 1`` entries."""

    def _freeze_stages(self):
        for module in self._stem_and_stages()[:self.frozen_stages + 1]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def switch_to_deploy(self):
        """Replace every submodule that has ``fuse()`` by the single conv (or
        simpler module) it folds into; inference only. Idempotent."""
        if not self.deploy:
            fuse_modules(self)
            self.deploy = True

    # ------------------------------------------------------------- loading

    @abstractmethod
    def _filter_checkpoint(
            self, state_dict: Dict[str, torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        """The checkpoint's keys mapped to this model's (the family's
        ``checkpoint_filter_fn``)."""

    def _allowed_missing_keys(
            self, state_dict: Dict[str, torch.Tensor]) -> List[str]:
        """Dense-only keys that ``state_dict``, a classification checkpoint,
        cannot have; they keep their initialisation. None by default."""
        return []

    def init_weights(self):
        """Load ``init_cfg=dict(type='Pretrained', ...)`` strictly; any other
        init_cfg is left to mmengine. Without init_cfg the official
        initialisation from the constructor stays."""
        if not _is_pretrained(self.init_cfg):
            super().init_weights()
            return
        path = self.init_cfg['checkpoint']
        if not is_remote(path) and not os.path.isfile(
                os.path.expanduser(path)):
            # our tools/train.py says this before any dataset is built;
            # other tools (mmdet's own) get the same message here
            raise MissingPretrainedError(missing_pretrained_message(path))
        state_dict = unwrap_state_dict(safe_torch_load(path))
        prefix = self.init_cfg.get('prefix')
        if prefix:
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()
                          if k.startswith(prefix)}
            if not state_dict:
                raise RuntimeError(f'No key of checkpoint {path!r} starts '
                                   f'with prefix {prefix!r}')
        state_dict = self._filter_checkpoint(state_dict)
        allowed_missing = self._allowed_missing_keys(state_dict)
        strict_load(self, state_dict, what=f'Checkpoint {path!r}',
                    allow_missing=allowed_missing)
        if allowed_missing:
            names = sorted({k.split('.')[0] for k in allowed_missing})
            MMLogger.get_current_instance().info(
                f'{type(self).__name__}: {path} has no dense-only modules '
                f'{names} (a classification checkpoint); they keep their '
                'initialisation')
        self._is_init = True


def rename_prefixes(state_dict: Dict[str, torch.Tensor],
                    renames: Sequence[Tuple[str, str]],
                    what: str) -> Dict[str, torch.Tensor]:
    """``state_dict`` with each key's prefix replaced by the first matching
    ``(old, new)`` pair of ``renames``. A key that none matches makes it raise
    ``ValueError('{what}: unexpected keys [...]')``."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        for old, new in renames:
            if key.startswith(old):
                converted[new + key[len(old):]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'{what}: unexpected keys {unknown[:8]}')
    return converted


def _is_pretrained(init_cfg) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def _check_init_cfg(init_cfg):
    if isinstance(init_cfg, (list, tuple)) and any(
            _is_pretrained(cfg) for cfg in init_cfg):
        raise ValueError('Give a Pretrained init_cfg as a single dict, not '
                         'inside a list')
    if _is_pretrained(init_cfg):
        unknown = sorted(set(init_cfg) - {'type', 'checkpoint', 'prefix'})
        if unknown or 'checkpoint' not in init_cfg:
            raise ValueError(
                "init_cfg=dict(type='Pretrained', checkpoint=PATH, "
                f"prefix=None) expected; unknown keys {unknown}, checkpoint "
                f"{'given' if 'checkpoint' in init_cfg else 'missing'}")
