"""Bar charts of images/s per variant, mmtinyvim against the best official
result, from a benchmark JSON (format: docs/benchmark_h200.json).

    python tools/analysis_tools/plot_benchmark.py docs/benchmark_h200.json \\
        --out-dir docs/images

Writes ``<prefix>_inference.png`` (AMP and fp32 panels: ours eager and ours
with the one-switch API as a ratio to the best official = max(official,
official fused), one group of bars per variant, a line at 1.0) and
``<prefix>_training.png`` (AMP training step: official, ours through the
engine, ours through the engine plus the hook, as a ratio to official).

JSON format::

    {"source": str, "date": str, "device": str, "unit": "images/s",
     "inference": {"protocol": str, "rows": [
        {"variant": str, "resolution": int,
         "amp":  {"official": n, "official_fused": n,
                  "mmtinyvim_eager": n, "mmtinyvim_api": n},
         "fp32": {...same keys...}}, ...]},
     "training": {"protocol": str, "rows": [
        {"variant": str, "official": n, "mmtinyvim_engine": n,
         "mmtinyvim_engine_hook": n}, ...]}}
"""
import argparse
import json
import os
import os.path as osp
import sys

TOP_FIELDS = ('source', 'date', 'device', 'unit', 'inference', 'training')
INFERENCE_ROW = ('variant', 'resolution', 'amp', 'fp32')
PRECISION_FIELDS = ('official', 'official_fused', 'mmtinyvim_eager',
                    'mmtinyvim_api')
TRAINING_ROW = ('variant', 'official', 'mmtinyvim_engine',
                'mmtinyvim_engine_hook')


class BenchmarkFormatError(ValueError):
    """The benchmark JSON lacks a field or holds a wrong value."""


def _require(mapping, fields, where):
    if not isinstance(mapping, dict):
        raise BenchmarkFormatError(f'{where} must be an object with the '
                                   f'fields {list(fields)}')
    missing = [f for f in fields if f not in mapping]
    if missing:
        raise BenchmarkFormatError(
            f'{where} lacks the field(s) {missing}; required: '
            f'{list(fields)}')


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not value > 0:
        raise BenchmarkFormatError(f'{where} must be a positive number, '
                                   f'got {value!r}')
    return value


def load_benchmark(path):
    """The checked benchmark dict; one clear error naming the missing
    field and the valid ones."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'Benchmark file not found: {path}')
    except json.JSONDecodeError as err:
        raise BenchmarkFormatError(f'{path} is not valid JSON: {err}')
    _require(data, TOP_FIELDS, path)
    for section, row_fields in (('inference', INFERENCE_ROW),
                                ('training', TRAINING_ROW)):
        _require(data[section], ('protocol', 'rows'), f'{path}: {section}')
        rows = data[section]['rows']
        if not isinstance(rows, list) or not rows:
            raise BenchmarkFormatError(
                f'{path}: {section}.rows must be a non-empty list')
        for k, row in enumerate(rows):
            where = f'{path}: {section}.rows[{k}]'
            _require(row, row_fields, where)
            if section == 'inference':
                for precision in ('amp', 'fp32'):
                    _require(row[precision], PRECISION_FIELDS,
                             f'{where}.{precision}')
                    for field in PRECISION_FIELDS:
                        _number(row[precision][field],
                                f'{where}.{precision}.{field}')
            else:
                for field in row_fields[1:]:
                    _number(row[field], f'{where}.{field}')
    return data


def inference_ratios(rows, precision):
    """Per variant: (label, best official img/s, eager ratio, api ratio)."""
    out = []
    for row in rows:
        values = row[precision]
        best = max(values['official'], values['official_fused'])
        out.append((f"{row['variant']}\n{row['resolution']}px", best,
                    values['mmtinyvim_eager'] / best,
                    values['mmtinyvim_api'] / best))
    return out


def _bars(ax, labels, series, title, ylabel):
    import numpy as np
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for k, (name, values, colour) in enumerate(series):
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width,
                      label=name, color=colour)
        for bar, value in zip(bars, values):
            ax.annotate(f'{value:.2f}', (bar.get_x() + bar.get_width() / 2,
                                         bar.get_height()),
                        ha='center', va='bottom', fontsize=6, rotation=90,
                        xytext=(0, 2), textcoords='offset points')
    ax.axhline(1.0, color='black', linewidth=0.8, linestyle='--')
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, max(max(v) for _, v, _ in series) * 1.25)
    ax.legend(fontsize=7, loc='upper left')
    ax.grid(axis='y', alpha=0.3)


def plot(data, out_dir, prefix='benchmark', dpi=100):
    """Write the two PNGs; returns their paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    subtitle = f"{data['device']}, {data['date']}"
    paths = []

    fig, axes = plt.subplots(2, 1, figsize=(10, 7.5))
    for ax, precision in zip(axes, ('amp', 'fp32')):
        ratios = inference_ratios(data['inference']['rows'], precision)
        labels = [f'{r[0]}\n{r[1]:.0f}/s' for r in ratios]
        _bars(ax, labels, [
            ('best official (max of official, official fused)',
             [1.0] * len(ratios), '#9e9e9e'),
            ('mmtinyvim eager', [r[2] for r in ratios], '#4c72b0'),
            ('mmtinyvim api (one switch)', [r[3] for r in ratios],
             '#dd8452'),
        ], f'Inference {precision.upper()}, batch 256: images/s relative '
           f'to the best official '
           f'(its img/s under each name; {subtitle})', 'x best official')
    fig.tight_layout()
    path = osp.join(out_dir, f'{prefix}_inference.png')
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    paths.append(path)

    rows = data['training']['rows']
    fig, ax = plt.subplots(figsize=(10, 4))
    _bars(ax, [f"{r['variant']}\n{r['official']:.0f}/s" for r in rows], [
        ('official', [1.0] * len(rows), '#9e9e9e'),
        ('mmtinyvim engine',
         [r['mmtinyvim_engine'] / r['official'] for r in rows], '#4c72b0'),
        ('mmtinyvim engine + hook',
         [r['mmtinyvim_engine_hook'] / r['official'] for r in rows],
         '#dd8452'),
    ], f'Training step, AMP fp16, batch 128: images/s relative to the '
       f'official code '
       f'(its img/s under each name; {subtitle})', 'x official')
    fig.tight_layout()
    path = osp.join(out_dir, f'{prefix}_training.png')
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    paths.append(path)
    return paths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('json', help='benchmark JSON, e.g. '
                        'docs/benchmark_h200.json')
    parser.add_argument('--out-dir', default='docs/images')
    parser.add_argument('--prefix', default='benchmark',
                        help='file names <prefix>_inference.png and '
                        '<prefix>_training.png (default: benchmark)')
    parser.add_argument('--dpi', type=int, default=100)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        data = load_benchmark(args.json)
    except (FileNotFoundError, BenchmarkFormatError) as err:
        sys.exit(f'error: {err}')
    for path in plot(data, args.out_dir, args.prefix, args.dpi):
        print(f'wrote {path} ({os.path.getsize(path) // 1024} KB)')


if __name__ == '__main__':
    main()
