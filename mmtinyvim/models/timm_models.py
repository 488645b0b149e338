"""The variants as timm models (imported by :mod:`mmtinyvim.models` when
timm is importable): ``timm.create_model('tinyvim_s')``, with the tags of
the official weights (``timm.create_model('tinyvim_b.1000e_in1k')``).

Registering adds entries to timm's model registry only; names timm already
knows are left to timm. The classifier is built by timm's
``build_model_with_cfg`` (so ``feature_cls='getter'``/``'hook'`` features,
``pretrained_cfg`` and ``pretrained_cfg_overlay`` work as for timm's own
models); ``features_only=True`` without a ``feature_cls`` gives the
backbone, as :func:`mmtinyvim.create_model` does. Weights are loaded by this
package's safe, strict loader from ``pretrained_cfg_overlay=dict(file=...)``
or the cache folder (:func:`mmtinyvim.models.factory.cache_dir`); nothing
is downloaded.
"""
import dataclasses
import functools

from timm.models import (PretrainedCfg, build_model_with_cfg,
                         generate_default_cfgs, is_model, register_model,
                         resolve_pretrained_cfg)

from .classifier import Classifier
from .factory import (MODEL_NAMES, _weights, create_model,
                      default_out_indices, list_models, pretrained_cfg,
                      resolve_pretrained)

__all__ = []

_TIMM_FIELDS = {f.name for f in dataclasses.fields(PretrainedCfg)}


def _timm_cfg(name: str) -> dict:
    # timm's fields only (its dataclass has no place for the others); the
    # official file is looked up by name when weights are asked for
    return {k: v for k, v in pretrained_cfg(name).items()
            if k in _TIMM_FIELDS and k not in ('architecture', 'tag')}


default_cfgs = generate_default_cfgs({
    f'{model}.{tag}': _timm_cfg(f'{model}.{tag}')
    for model, variant in MODEL_NAMES.items() for tag in _weights(variant)})


def _create(model_name: str, pretrained=False, **kwargs):
    resolved = resolve_pretrained_cfg(
        model_name, pretrained_cfg=kwargs.pop('pretrained_cfg', None),
        pretrained_cfg_overlay=kwargs.pop('pretrained_cfg_overlay', None))
    name = f'{model_name}.{resolved.tag}'
    kwargs.pop('cache_dir', None)  # nothing is downloaded
    if kwargs.get('features_only') and 'feature_cls' not in kwargs:
        kwargs.pop('features_only')
        return create_model(name, pretrained=bool(pretrained),
                            features_only=True,
                            pretrained_file=resolved.file if pretrained
                            else None, **kwargs)
    path = resolve_pretrained(name, bool(pretrained),
                              resolved.file if pretrained else None)
    variant = MODEL_NAMES[model_name]
    model = build_model_with_cfg(
        functools.partial(Classifier, variant), model_name, pretrained=False,
        pretrained_cfg=resolved,
        feature_cfg=dict(out_indices=default_out_indices(variant)),
        checkpoint=path, **kwargs)
    # timm's dict, with the keys its dataclass has no place for
    extra = {k: v for k, v in pretrained_cfg(name).items()
             if k not in _TIMM_FIELDS}
    model.pretrained_cfg = model.default_cfg = dict(model.pretrained_cfg,
                                                    **extra)
    return model


def _entrypoint(model_name: str):
    def entrypoint(pretrained=False, **kwargs):
        return _create(model_name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = model_name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = (f'{model_name} from mmtinyvim (see '
                          'mmtinyvim.create_model).')
    return entrypoint


for _name in list_models():
    if not is_model(_name):
        globals()[_name] = register_model(_entrypoint(_name))
