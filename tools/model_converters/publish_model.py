"""Slim a training checkpoint for release: weights and meta only, a
sha256 prefix in the file name.

    python tools/model_converters/publish_model.py work_dirs/x/epoch_300.pth \\
        tinyvim_s_in1k.pth [--weights auto|ema|model]
    # -> tinyvim_s_in1k-<first 8 hex digits of its sha256>.pth

Keeps ``state_dict`` and ``meta`` (without ``meta.hook_msgs``: paths into
the training work_dir that mean nothing, and must never be acted on,
elsewhere); drops the optimizer, schedulers, message hub and EMA copy. With
mmengine's ``EMAHook`` the checkpoint's ``state_dict`` already holds the EMA
weights (the hook swaps them in on save); ``--weights model`` publishes the
raw model weights instead; ``auto`` (default) takes the EMA weights when the
file has them. The name follows the OpenMMLab / torch.hub convention
``name-<8 hex>.pth``, which ``torch.hub.load_state_dict_from_url(...,
check_hash=True)`` verifies. The file is loaded with mmtinyvim's safe loader
(torch's weights-only unpickler), written to a temporary file and renamed;
an output naming the input, or weights holding NaN/inf, are refused.
"""
import argparse
import hashlib
import os
import sys

import torch

from mmtinyvim.engine.checkpoint_hook import nonfinite_entries
from mmtinyvim.utils.checkpoint import safe_torch_load
from mmtinyvim.utils.files import (atomic_replace, refuse_same_file,
                                   temporary_name)

KEEP = ('state_dict', 'meta')
DROPPED_META = ('hook_msgs', )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def slim(checkpoint, weights='auto', source=None):
    """(the checkpoint to publish, the weights chosen, the keys dropped)."""
    if weights not in ('auto', 'ema', 'model'):
        raise ValueError(f"weights={weights!r}; valid: 'auto', 'ema', "
                         "'model'")
    if not isinstance(checkpoint, dict) or not isinstance(
            checkpoint.get('state_dict'), dict):
        raise ValueError(f'{source}: not an mmengine checkpoint (a dict with '
                         "a 'state_dict'); got keys "
                         f'{sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__}')
    ema = checkpoint.get('ema_state_dict')
    if weights == 'ema' and ema is None:
        raise ValueError(f'{source} has no EMA weights (no ema_state_dict: '
                         'trained without EMAHook); use --weights model')
    state_dict = checkpoint['state_dict']
    chosen = 'ema' if ema is not None and weights != 'model' else 'model'
    if chosen == 'model' and ema is not None:
        # EMAHook swapped: ema_state_dict['module.<k>'] holds the raw <k>
        state_dict = dict(state_dict)
        for key, value in ema.items():
            if key.startswith('module.') and key[7:] in state_dict:
                state_dict[key[7:]] = value
    bad, count = nonfinite_entries(state_dict)
    if count:
        raise ValueError(f'{source}: {count} tensors hold NaN/inf (e.g. '
                         f'{bad}); refusing to publish broken weights')
    meta = {k: v for k, v in (checkpoint.get('meta') or {}).items()
            if k not in DROPPED_META}
    meta['published'] = dict(source=os.path.basename(source or ''),
                             weights=chosen)
    dropped = sorted(str(k) for k in checkpoint if k not in KEEP)
    return dict(state_dict=state_dict, meta=meta), chosen, dropped


def publish(src, dst, weights='auto'):
    """Write the slimmed ``src`` as ``<dst without .pth>-<sha8>.pth``;
    returns (that path, the weights chosen, the keys dropped)."""
    refuse_same_file(src, dst, 'output', 'checkpoint')
    out, chosen, dropped = slim(safe_torch_load(src), weights, src)
    stem = dst[:-4] if dst.endswith('.pth') else dst
    # the name depends on the bytes: save to a temporary file, hash it, then
    # rename it into place (a crash leaves only the hidden temporary file)
    tmp = temporary_name(stem + '.pth')
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    try:
        torch.save(out, tmp)
        final = f'{stem}-{_sha256(tmp)[:8]}.pth'
        refuse_same_file(src, final, 'output', 'checkpoint')
        atomic_replace(final, lambda path: os.replace(tmp, path))
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return final, chosen, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('in_file', help='training checkpoint')
    parser.add_argument('out_file', help='output name; -<sha8>.pth is '
                        'appended')
    parser.add_argument('--weights', default='auto',
                        choices=('auto', 'ema', 'model'),
                        help='EMA or raw model weights (auto: EMA if the '
                        'checkpoint has them)')
    args = parser.parse_args(argv)
    try:
        final, chosen, dropped = publish(args.in_file, args.out_file,
                                         args.weights)
    except (FileNotFoundError, RuntimeError, TypeError, ValueError) as err:
        sys.exit(f'error: {err}')
    print(f'wrote {final} ({os.path.getsize(final) / 2**20:.1f} MiB, '
          f'{chosen} weights); dropped {dropped or "nothing"}')
    return final


if __name__ == '__main__':
    main()
