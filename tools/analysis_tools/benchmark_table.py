"""The tables of docs/benchmark.md, rendered from the benchmark JSON
(docs/benchmark_h200.json; format: tools/analysis_tools/plot_benchmark.py).

    # print the tables
    python tools/analysis_tools/benchmark_table.py docs/benchmark_h200.json
    # rewrite them in docs/benchmark.md (between the benchmark-table markers)
    python tools/analysis_tools/benchmark_table.py docs/benchmark_h200.json \\
        --write docs/benchmark.md
    # fail when docs/benchmark.md and the JSON disagree
    python tools/analysis_tools/benchmark_table.py docs/benchmark_h200.json \\
        --check docs/benchmark.md

The JSON's top-level ``stale`` lists the mmtinyvim columns that the current
code has not been shown to reproduce; they are rendered with a mark
(``STALE_MARK``) and a line naming the command that re-measures them, so a
number of an older code version never reads as current.
"""
import argparse
import importlib.util
import os.path as osp
import sys

# the JSON's format and its checks live in the sibling script (tools/ is
# not a package, and a script must not edit sys.path)
_spec = importlib.util.spec_from_file_location(
    'plot_benchmark', osp.join(osp.dirname(osp.abspath(__file__)),
                               'plot_benchmark.py'))
_plot_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_plot_benchmark)
BenchmarkFormatError = _plot_benchmark.BenchmarkFormatError
load_benchmark = _plot_benchmark.load_benchmark

START = '<!-- benchmark-table:start (generated: benchmark_table.py) -->'
END = '<!-- benchmark-table:end -->'
STALE_MARK = '‡'
INFERENCE = ('official', 'official_fused', 'mmtinyvim_eager',
             'mmtinyvim_api')
TRAINING = ('official', 'mmtinyvim_engine', 'mmtinyvim_engine_hook')


def _cell(value, column, stale):
    text = f'{value:.0f}'
    return text + STALE_MARK if column in stale else text


def render(data: dict) -> str:
    """Markdown of the inference and training tables of ``data``."""
    stale = set(data.get('stale', {}).get('columns', ()))
    lines = [f'{data["device"]}, {data["unit"]}; official columns: '
             f'{data["source"]} ({data["date"]}).', '',
             'Inference (' + data['inference']['protocol'] + '):', '',
             '| variant | res | precision | official | official fused | '
             'mmtinyvim eager | mmtinyvim `for_inference` | eager / best '
             'official | `for_inference` / best official |',
             '|---|---|---|---|---|---|---|---|---|']
    for row in data['inference']['rows']:
        for precision in ('amp', 'fp32'):
            values = row[precision]
            best = max(values['official'], values['official_fused'])
            cells = [_cell(values[c], c, stale) for c in INFERENCE]
            ratios = [f'{values[c] / best:.2f}' +
                      (STALE_MARK if c in stale else '')
                      for c in ('mmtinyvim_eager', 'mmtinyvim_api')]
            lines.append(f'| {row["variant"]} | {row["resolution"]} | '
                         f'{precision} | ' + ' | '.join(cells + ratios) +
                         ' |')
    lines += ['', 'Training (' + data['training']['protocol'] + '):', '',
              '| variant | official | mmtinyvim engine | mmtinyvim '
              'engine + hook | engine / official | engine + hook / '
              'official |', '|---|---|---|---|---|---|']
    for row in data['training']['rows']:
        cells = [_cell(row[c], c, stale) for c in TRAINING]
        ratios = [f'{row[c] / row["official"]:.2f}' +
                  (STALE_MARK if c in stale else '')
                  for c in ('mmtinyvim_engine', 'mmtinyvim_engine_hook')]
        lines.append(f'| {row["variant"]} | ' + ' | '.join(cells + ratios) +
                     ' |')
    if stale:
        lines += ['', f'{STALE_MARK} {data["stale"]["reason"]}']
    return '\n'.join(lines)


def embedded(markdown: str, path: str) -> str:
    """The text between the markers of ``markdown``."""
    if markdown.count(START) != 1 or markdown.count(END) != 1:
        raise BenchmarkFormatError(
            f'{path} must hold the markers {START!r} and {END!r} once each')
    return markdown.split(START)[1].split(END)[0].strip('\n')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('json', help='benchmark JSON, e.g. '
                        'docs/benchmark_h200.json')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--write', metavar='MD',
                       help='replace the tables between the markers of MD')
    group.add_argument('--check', metavar='MD',
                       help='exit 1 when the tables in MD differ from the '
                       'JSON\'s rendering')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        table = render(load_benchmark(args.json))
        path = args.write or args.check
        if path is None:
            print(table)
            return
        with open(path) as f:
            markdown = f.read()
        current = embedded(markdown, path)
    except (FileNotFoundError, BenchmarkFormatError) as err:
        sys.exit(f'error: {err}')
    if args.check:
        if current != table:
            sys.exit(f'error: the tables in {path} differ from the rendering '
                     f'of {args.json}; run benchmark_table.py {args.json} '
                     f'--write {path}')
        return
    head, rest = markdown.split(START)
    tail = rest.split(END)[1]
    with open(path, 'w') as f:
        f.write(f'{head}{START}\n{table}\n{END}{tail}')
    print(f'wrote the tables of {path}')


if __name__ == '__main__':
    main()
