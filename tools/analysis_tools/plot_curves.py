"""Plot loss and metric curves from mmengine's scalar logs.

    python tools/analysis_tools/plot_curves.py work_dirs/demo --out curves.png
    python tools/analysis_tools/plot_curves.py RUN_A RUN_B \\
        --keys loss loss_mask coco/bbox_mAP --out compare.png

Each input is a ``scalars.json`` (mmengine's ``LocalVisBackend``: one JSON
object per line) or a work_dir, whose newest ``<timestamp>/vis_data/
scalars.json`` is read. Training lines carry ``iter`` (and ``loss*``, ``lr``,
...); validation lines carry metrics such as ``coco/bbox_mAP`` or ``mIoU``
and are placed at the iteration of the training line before them (so
epoch-based and iteration-based runs share the x axis). One panel per key,
one line per input.

``--keys`` defaults to every training key starting with ``loss``; a key that
no input has is an error listing the available ones.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import sys


class CurveError(ValueError):
    """An input cannot be plotted as asked."""


def find_scalars(path):
    """``path`` if it is a file, else the newest
    ``<timestamp>/vis_data/scalars.json`` under the work_dir ``path``."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'No such scalars.json or work_dir: {path}')
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data',
                                      'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'{path} holds no <timestamp>/vis_data/scalars.json; pass the '
            'work_dir of an mmengine run or the scalars.json itself')
    return found[-1]


def read_scalars(path):
    """``(train, val)``: dicts key -> list of (x, value)."""
    train, val = {}, {}
    last_iter = 0
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CurveError(f'{path}, line {number}: not JSON ({err})')
            if not isinstance(record, dict):
                raise CurveError(f'{path}, line {number}: not a JSON object')
            if 'iter' in record or 'lr' in record:
                x = record.get('iter', record.get('step', last_iter))
                last_iter, target = x, train
            else:
                x, target = last_iter or record.get('step', 0), val
            for key, value in record.items():
                if key in ('iter', 'step', 'epoch') or isinstance(
                        value, bool) or not isinstance(value, (int, float)):
                    continue
                target.setdefault(key, []).append((x, float(value)))
    if not train and not val:
        raise CurveError(f'{path} holds no scalar records')
    return train, val


def run_name(path, scalars):
    """A short legend label: the work_dir's name, or the file's folder."""
    if osp.isdir(path):
        return osp.basename(osp.normpath(path))
    parts = osp.normpath(scalars).split(os.sep)
    return parts[-4] if len(parts) >= 4 and parts[-2] == 'vis_data' \
        else osp.basename(scalars)


def select_keys(runs, keys):
    """The keys to draw; one clear error for a key no run has."""
    available_train = sorted({k for _, train, _ in runs for k in train})
    available_val = sorted({k for _, _, val in runs for k in val})
    if not keys:
        keys = [k for k in available_train if k.startswith('loss')]
        if not keys:
            raise CurveError(
                'no loss keys in the logs; pass --keys, available: '
                f'training {available_train}, validation {available_val}')
        return keys
    unknown = [k for k in keys
               if k not in available_train and k not in available_val]
    if unknown:
        raise CurveError(
            f'key(s) {unknown} not in the logs; available: training '
            f'{available_train}, validation {available_val}')
    return list(keys)


def plot(runs, keys, out, title=None, dpi=100):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(4.2 * columns, 3.0 * rows))
    for ax, key in zip(axes.flat, keys):
        for name, train, val in runs:
            points = train.get(key) or val.get(key)
            if not points:
                continue
            xs, ys = zip(*points)
            is_val = key not in train
            ax.plot(xs, ys, marker='o' if is_val else None,
                    markersize=4, linewidth=1.2, label=name)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def plot_curves(inputs, keys=None, out='curves.png', title=None, dpi=100):
    """Read every input, check the keys, write the PNG; returns its path."""
    runs = []
    for path in inputs:
        scalars = find_scalars(path)
        train, val = read_scalars(scalars)
        runs.append((run_name(path, scalars), train, val))
    return plot(runs, select_keys(runs, keys), out, title, dpi)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('inputs', nargs='+',
                        help='work_dirs or scalars.json files')
    parser.add_argument('--keys', nargs='+', default=None,
                        help='scalars to draw (default: every training key '
                        'starting with "loss")')
    parser.add_argument('--out', default='curves.png', help='PNG to write')
    parser.add_argument('--title', default=None)
    parser.add_argument('--dpi', type=int, default=100)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        out = plot_curves(args.inputs, args.keys, args.out, args.title,
                          args.dpi)
    except (FileNotFoundError, CurveError) as err:
        sys.exit(f'error: {err}')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
