"""Every table of docs/benchmark.md in one command, next to the official code
and the R50 twins in the same run.

    # everything, the official models included, then the table JSON
    python tools/analysis_tools/benchmark_all.py --out-dir work_dirs/bench \\
        --official-root-tinyvim path/to/TinyViM \\
        --official-root-mobilemamba path/to/MobileMamba \\
        --table-json work_dirs/bench/benchmark_h200.json
    # a short plumbing run: two variants, short timings
    python tools/analysis_tools/benchmark_all.py --quick --out-dir ...
    # some sections only; --dry-run prints the commands and runs nothing
    python tools/analysis_tools/benchmark_all.py --only classifiers profiles \\
        --dry-run
    # fill a table JSON from an earlier run's --out-dir, measuring nothing
    python tools/analysis_tools/benchmark_all.py --dry-run \\
        --out-dir work_dirs/bench --table-json work_dirs/table.json

Sections (``--only`` picks some; each writes its JSON and a ``.log`` of its
output into ``--out-dir``, and ``summary.json`` lists every command with its
exit status and duration):

* ``classifiers``: ``benchmark.py`` per family (TinyViM, MobileMamba) and
  per table: inference (``eager`` and ``api``, amp and fp32, batch 256) and
  training (``engine`` and ``engine+hook``, batch 128); the official models
  of that family (``--official``, from ``--official-root-tinyvim`` /
  ``--official-root-mobilemamba``; a printed line says when they are
  skipped) and timm's resnet18 (the yardstick that shows the harnesses
  agree between processes) in the same process;
* ``kernels``: ``bench_kernels.py`` (the networks with the op backends
  ``reference`` and ``auto``, and the ops alone);
* ``profiles``: ``profile_step.py`` per variant of ``--profile-variants``:
  ours as built and the official model (when its root is given) in one
  process, the AMP training step at the variant's resolution, batch 128;
* ``dense``: ``benchmark.py --parts-only`` per detector/segmentor head of
  ``--dense-heads``: the backbone+neck (``--parts-config``) and the whole
  train/test steps (``--step-config``) of the shipped configs of
  ``--dense-variants`` next to the head's R50 twin, mmdet's or mmseg's own
  config (from their ``.mim/configs``), in the same process, and the
  detector inference at 800x1333 (``--det-config``) of the Mask R-CNN ones.

Why subprocesses, not one process: the official TinyViM and MobileMamba
repositories both name their package ``model``, so one process can import
only one of them; each family's section therefore runs in its own process
with its own ``PYTHONPATH`` (the official root first, then this
repository), and ours run in that same process, so that the ratio to the
official numbers is taken under exactly the same conditions. A section
also leaves CUDA state (allocator, cuDNN search, dynamo caches, the op
backends' environment variables) behind, and a fatal error (a CUDA fault,
an out-of-memory abort) must not lose the other sections: each command's
JSON is complete when it ends, and the driver goes on with the next one.

``--table-json PATH`` then fills a JSON of benchmark_table.py's format
(``--table-base``, default docs/benchmark_h200.json) with the classifier
records found in ``--out-dir``: each cell measured in this run (the
table's batch sizes, a variant of a row) is replaced, the others are kept,
and a row is added only when every cell of it was measured. A column
leaves the ``stale`` list when every row of the table got it in this run
(a ``--quick`` run leaves the other variants' old numbers marked). The
numbers of one GPU kind must not mix with another's: a run on another
device than the base's must measure every cell. Render it with
``benchmark_table.py PATH --write docs/benchmark.md``.
"""
import argparse
import copy
import datetime
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join('tools', 'analysis_tools')
SECTIONS = ('classifiers', 'kernels', 'profiles', 'dense')
FAMILIES = ('tinyvim', 'mobilemamba')
# what the official repositories hold (checked when a root is given) and
# their factories per arch
OFFICIAL = dict(
    tinyvim=dict(file=osp.join('model', 'tinyvim.py'),
                 factory='model.tinyvim:TinyViM_{ARCH}'),
    mobilemamba=dict(
        file=osp.join('model', 'mobilemamba', 'mobilemamba.py'),
        factory='model.mobilemamba.mobilemamba:MobileMamba_{ARCH}'))
# the tables' protocol (docs/benchmark.md): inference and training batches
BATCH = 256
TRAIN_BATCH = 128
QUICK_VARIANTS = ('tinyvim-s', 'mobilemamba-t2')
# head -> (file name pattern of our configs, R50 twin: package, path in its
# .mim/configs)
DENSE_HEADS = {
    'maskrcnn': ('maskrcnn_{variant}_coco.py',
                 ('mmdet', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')),
    'retinanet': ('retinanet_{variant}_coco.py',
                  ('mmdet', 'retinanet/retinanet_r50_fpn_1x_coco.py')),
    'fpn': ('fpn_{variant}_ade20k.py',
            ('mmseg', 'sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py')),
    'deeplabv3': ('deeplabv3_{variant}_ade20k.py',
                  ('mmseg', 'deeplabv3/'
                   'deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py')),
    'pspnet': ('pspnet_{variant}_ade20k.py',
               ('mmseg', 'pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py')),
}
# benchmark.py configurations -> the table's columns
INFERENCE_COLUMNS = {'official': 'official',
                     'official_fused': 'official_fused',
                     'eager': 'mmtinyvim_eager', 'api': 'mmtinyvim_api'}
TRAINING_COLUMNS = {'official': 'official', 'engine': 'mmtinyvim_engine',
                    'engine+hook': 'mmtinyvim_engine_hook'}
DISPLAY = dict(tinyvim='TinyViM', mobilemamba='MobileMamba')


def _zoo():
    # imported when needed: --help and the plan's errors need no torch
    from mmtinyvim.models import zoo
    return zoo


@dataclass
class Job:
    """One command of the plan: ``python SCRIPT ARGS`` in the repository,
    with ``pythonpath`` in front of ``PYTHONPATH``."""
    section: str
    name: str
    script: str
    args: list
    pythonpath: list = field(default_factory=list)

    def command(self) -> list:
        return [sys.executable, self.script] + self.args

    def shell(self) -> str:
        """The command as one copyable shell line."""
        prefix = (f'PYTHONPATH={os.pathsep.join(self.pythonpath)} '
                  if self.pythonpath else '')
        return prefix + ' '.join(['python', self.script] + self.args)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', default='work_dirs/benchmark_all',
                        help='every JSON and log of the run')
    parser.add_argument('--only', nargs='+', choices=SECTIONS,
                        help='run these sections only (default: all)')
    parser.add_argument('--quick', action='store_true',
                        help=f'short timings and the variants '
                        f'{", ".join(QUICK_VARIANTS)} (where not given)')
    parser.add_argument('--official-root-tinyvim', metavar='DIR',
                        help='root of a clone of the official TinyViM '
                        'repository (holds model/tinyvim.py)')
    parser.add_argument('--official-root-mobilemamba', metavar='DIR',
                        help='root of a clone of the official MobileMamba '
                        'repository (holds model/mobilemamba/mobilemamba.py)')
    parser.add_argument('--variants', nargs='+',
                        help='classifier and kernel variants (default: all; '
                        '--quick: ' + ' '.join(QUICK_VARIANTS) + ')')
    parser.add_argument('--profile-variants', nargs='+',
                        help='default: tinyvim-s mobilemamba-b1 (--quick: '
                        'tinyvim-s)')
    parser.add_argument('--dense-variants', nargs='+',
                        help='variants whose detector/segmentor configs are '
                        'timed (default: tinyvim-s mobilemamba-b1; --quick: '
                        'tinyvim-s)')
    parser.add_argument('--dense-heads', nargs='+', choices=DENSE_HEADS,
                        help='default: all (--quick: maskrcnn fpn)')
    parser.add_argument('--min-time', type=float,
                        help='benchmark.py\'s --min-time (default 3 s; '
                        '--quick: 0.5 s)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands, run nothing (with '
                        '--table-json: fill it from --out-dir as it is)')
    parser.add_argument('--table-json', metavar='PATH',
                        help='write the table JSON (benchmark_table.py\'s '
                        'format) with the cells of this run filled in')
    parser.add_argument('--table-base', metavar='PATH',
                        default=osp.join(REPO, 'docs', 'benchmark_h200.json'),
                        help='the table whose other cells are kept (default: '
                        'docs/benchmark_h200.json)')
    args = parser.parse_args(argv)
    zoo = _zoo()
    quick = args.quick
    if args.variants is None:
        args.variants = list(QUICK_VARIANTS if quick else zoo.VARIANTS)
    if args.profile_variants is None:
        args.profile_variants = (['tinyvim-s'] if quick else
                                 ['tinyvim-s', 'mobilemamba-b1'])
    if args.dense_variants is None:
        args.dense_variants = (['tinyvim-s'] if quick else
                               ['tinyvim-s', 'mobilemamba-b1'])
    if args.dense_heads is None:
        args.dense_heads = ['maskrcnn', 'fpn'] if quick else list(DENSE_HEADS)
    if args.min_time is None:
        args.min_time = 0.5 if quick else 3.0
    if args.min_time < 0:
        parser.error(f'--min-time must be >= 0, got {args.min_time}')
    for flag in ('variants', 'profile_variants', 'dense_variants'):
        for name in getattr(args, flag):
            try:
                zoo.parse_variant(name)
            except ValueError:
                parser.error(f'--{flag.replace("_", "-")}: unknown variant '
                             f'{name!r}; valid: {", ".join(zoo.VARIANTS)}')
    args.roots = {}
    for family in FAMILIES:
        root = getattr(args, f'official_root_{family}')
        if root is None:
            continue
        expected = osp.join(root, OFFICIAL[family]['file'])
        if not osp.isfile(expected):
            parser.error(f'--official-root-{family} {root}: no '
                         f'{OFFICIAL[family]["file"]} there; give the root '
                         f'of a clone of the official {DISPLAY[family]} '
                         'repository')
        args.roots[family] = osp.abspath(root)
    args.sections = args.only or list(SECTIONS)
    # the commands run in the repository: their paths must not depend on
    # where the driver was started
    args.out_dir = osp.abspath(args.out_dir)
    return args


def official_spec(variant: str) -> str:
    """'tinyvim-s' -> 'tinyvim-s=model.tinyvim:TinyViM_S'."""
    family, arch = _zoo().parse_variant(variant)
    factory = OFFICIAL[family]['factory'].format(ARCH=arch.upper())
    return f'{variant}={factory}'


def twin_config(package: str, path: str) -> str:
    """An R50 config file shipped inside mmdet / mmseg (``.mim/configs``),
    found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SystemExit(f'dense: {package} is not installed; its R50 '
                         f'config {path} is the twin the section times')
    config = osp.join(osp.dirname(spec.origin), '.mim', 'configs', path)
    if not osp.isfile(config):
        raise SystemExit(f'dense: {package} has no {path} in its .mim/configs '
                         '(another version?); it is the R50 twin the section '
                         'times')
    return config


def _family(variant: str) -> str:
    return _zoo().parse_variant(variant)[0]


def plan(args, announce=print) -> list:
    """The commands of the sections of ``args``, in order; ``announce``
    gets one line per official model left out."""
    out = args.out_dir
    bench = osp.join(TOOLS, 'benchmark.py')
    timing = ['--min-time', str(args.min_time)]
    jobs = []
    if 'classifiers' in args.sections:
        for family in FAMILIES:
            variants = [v for v in args.variants if _family(v) == family]
            if not variants:
                continue
            official, path = [], []
            if family in args.roots:
                path = [args.roots[family]]
                for variant in variants:
                    official += ['--official', official_spec(variant)]
            else:
                announce(f'classifiers: official {DISPLAY[family]} skipped '
                         f'(no --official-root-{family})')
            for table, options in (
                    ('infer', ['--configs', 'eager', 'api', '--modes',
                               'amp', 'fp32', '--batch', str(BATCH)]),
                    ('train', ['--configs', 'engine', 'engine+hook',
                               '--modes', 'train', '--train-batch',
                               str(TRAIN_BATCH)])):
                name = f'classifiers_{family}_{table}'
                jobs.append(Job('classifiers', name, bench, variants + [
                    '--peers', 'resnet18'] + options + official + timing +
                    ['--out', osp.join(out, name + '.json')], path))
    if 'kernels' in args.sections:
        jobs.append(Job('kernels', 'kernels',
                        osp.join(TOOLS, 'bench_kernels.py'),
                        list(args.variants) + (['--quick'] if args.quick
                                               else []) +
                        ['--out', osp.join(out, 'kernels.json')]))
    if 'profiles' in args.sections:
        for variant in args.profile_variants:
            family = _family(variant)
            name = f'profile_{variant}'
            extra, path = [], []
            if family in args.roots:
                path = [args.roots[family]]
                extra = ['--factory', official_spec(variant).split('=')[1],
                         '--label', f'official-{variant}']
            else:
                announce(f'profiles: official {variant} skipped (no '
                         f'--official-root-{family})')
            jobs.append(Job('profiles', name,
                            osp.join(TOOLS, 'profile_step.py'),
                            [variant] + extra + [
                                '--mode', 'train', '--batch',
                                str(TRAIN_BATCH), '--img-size',
                                str(_zoo().paper_resolution(variant))] +
                            (['--warmup', '2', '--steps', '2']
                             if args.quick else []) +
                            ['--out', osp.join(out, name + '.json')], path))
    if 'dense' in args.sections:
        for head in args.dense_heads:
            pattern, twin = DENSE_HEADS[head]
            ours = []
            for variant in args.dense_variants:
                config = osp.join('configs', pattern.format(
                    variant=variant.replace('-', '_')))
                if not osp.isfile(osp.join(REPO, config)):
                    raise SystemExit(f'dense: no {config} for {head} and '
                                     f'{variant}; give other '
                                     '--dense-variants / --dense-heads')
                ours.append(config)
            configs = ours + [twin_config(*twin)]
            name = f'dense_{head}'
            det = (['--det-config'] + ours + ['--det-configs', 'eager',
                                              'deploy+graph']
                   if head == 'maskrcnn' else [])
            jobs.append(Job('dense', name, bench, [
                '--parts-only', '--parts-config'] + configs +
                ['--step-config'] + configs + det + timing +
                ['--out', osp.join(out, name + '.json')]))
    return jobs


def run_job(job: Job, out_dir: str) -> dict:
    """Run one command, its output both printed and in ``<name>.log``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        job.pythonpath + [REPO] + ([env['PYTHONPATH']]
                                   if env.get('PYTHONPATH') else []))
    print(f'\n=== {job.section}: {job.shell()}', flush=True)
    tic = time.perf_counter()
    with open(osp.join(out_dir, job.name + '.log'), 'w') as log:
        process = subprocess.Popen(job.command(), cwd=REPO, env=env,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        rc = process.wait()
    return dict(section=job.section, name=job.name, command=job.shell(),
                rc=rc, seconds=round(time.perf_counter() - tic, 1))


def collect_records(out_dir: str) -> tuple:
    """(records, gpu) of the classifier JSONs in ``out_dir``; one GPU kind
    only."""
    records, gpus = [], set()
    for path in sorted(glob.glob(osp.join(out_dir, 'classifiers_*.json'))):
        with open(path) as f:
            data = json.load(f)
        gpus.add(data.get('env', {}).get('gpu'))
        records += data.get('records', [])
    if len(gpus) > 1:
        raise SystemExit(f'{out_dir}: classifier records of several GPUs '
                         f'({", ".join(sorted(map(str, gpus)))}); one '
                         'table holds one GPU kind')
    return records, next(iter(gpus), None)


def _measured_cells(records: list) -> dict:
    """(section, variant, precision or None, column) -> img/s, and the
    resolutions of the variants, of the usable records."""
    zoo = _zoo()
    cells, resolutions = {}, {}
    for r in records:
        if 'error' in r or 'img_s' not in r:
            continue
        if r['model'] not in zoo.VARIANTS:
            continue  # the timm yardstick
        if r['mode'] in ('amp', 'fp32') and r['batch'] == BATCH and (
                r['config'] in INFERENCE_COLUMNS):
            key = ('inference', r['model'], r['mode'],
                   INFERENCE_COLUMNS[r['config']])
        elif r['mode'] == 'train' and r['batch'] == TRAIN_BATCH and (
                r['config'] in TRAINING_COLUMNS):
            key = ('training', r['model'], None,
                   TRAINING_COLUMNS[r['config']])
        else:
            continue
        cells[key] = round(r['img_s'])
        resolutions[r['model']] = r.get('resolution')
    return cells, resolutions


def _display(variant: str) -> str:
    family, arch = _zoo().parse_variant(variant)
    return f'{DISPLAY[family]}-{arch.upper()}'


def fill_table(base: dict, records: list, gpu, today=None) -> tuple:
    """(table, report lines): ``base`` (benchmark_table.py's format) with
    the cells of ``records`` (benchmark.py's) filled in; see the module's
    docstring for the rules."""
    zoo = _zoo()
    table = copy.deepcopy(base)
    cells, resolutions = _measured_cells(records)
    report = []
    sections = dict(
        inference=(('amp', 'fp32'), tuple(INFERENCE_COLUMNS.values())),
        training=((None, ), tuple(TRAINING_COLUMNS.values())))
    filled = set()  # (section, row index, precision, column)
    for section, (precisions, columns) in sections.items():
        rows = table[section]['rows']
        by_variant = {row['variant'].lower(): row for row in rows}
        for variant in zoo.VARIANTS:
            keys = [(section, variant, p, c) for p in precisions
                    for c in columns]
            got = [k for k in keys if k in cells]
            if not got:
                continue
            row = by_variant.get(variant)
            if row is None:
                if len(got) < len(keys):
                    report.append(
                        f'{section}: no {_display(variant)} row, and not '
                        'every cell of one was measured: not added')
                    continue
                row = dict(variant=_display(variant))
                if section == 'inference':
                    row.update(resolution=resolutions[variant],
                               amp={}, fp32={})
                rows.append(row)
                report.append(f'{section}: added the row {row["variant"]}')
            for key in got:
                _, _, precision, column = key
                (row[precision] if precision else row)[column] = cells[key]
                filled.add((section, row['variant'], precision, column))
        order = {_display(v): k for k, v in enumerate(zoo.VARIANTS)}
        rows.sort(key=lambda row: order.get(row['variant'], len(order)))

    def complete(column):
        """Every row of every section with ``column`` got it here."""
        return all((section, row['variant'], p, column) in filled
                   for section, (precisions, columns) in sections.items()
                   if column in columns
                   for row in table[section]['rows'] for p in precisions)

    every = all(complete(c) for _, columns in sections.values()
                for c in columns)
    if filled and gpu is not None and gpu != table['device']:
        if not every:
            raise SystemExit(
                f'the records are of {gpu}, the table of {table["device"]}: '
                'filling some cells would mix GPU kinds in one table; give '
                f'--table-base a table of {gpu}, or measure every cell (all '
                'variants, both official roots, no --quick)')
        table['device'] = gpu
    stale = table.get('stale')
    if stale:
        fresh = [c for c in stale['columns'] if complete(c)]
        stale['columns'] = [c for c in stale['columns'] if c not in fresh]
        if fresh:
            report.append(f'no longer stale: {", ".join(fresh)}')
        if stale['columns']:
            report.append(f'still stale (not every row measured): '
                          f'{", ".join(stale["columns"])}')
        else:
            del table['stale']
    if complete('official') and complete('official_fused'):
        today = today or datetime.date.today().isoformat()
        table['date'] = today
        table['source'] = (
            f'{table["device"]} run of {today}: the official code and the '
            'mmtinyvim benchmark (tools/analysis_tools/benchmark_all.py) '
            'in the same process per family, a timm resnet18 in each')
    elif any(c[-1] in ('official', 'official_fused') for c in filled):
        report.append('some official cells re-measured, not all: the '
                      'source line and date still describe the base\'s run')
    report.insert(0, f'filled {len(filled)} cells')
    return table, report


def _load_benchmark():
    # the table's format and its checks live in the sibling script (tools/
    # is not a package)
    spec = importlib.util.spec_from_file_location(
        'plot_benchmark', osp.join(REPO, TOOLS, 'plot_benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_benchmark


def write_table(args) -> list:
    """Fill ``--table-base`` from ``--out-dir`` into ``--table-json``;
    the result is checked as benchmark_table.py will read it."""
    load_benchmark = _load_benchmark()
    base = load_benchmark(args.table_base)
    records, gpu = collect_records(args.out_dir)
    if not records:
        raise SystemExit(f'--table-json: no classifier records in '
                         f'{args.out_dir} (classifiers_*.json); run the '
                         'classifiers section first')
    table, report = fill_table(base, records, gpu)
    os.makedirs(osp.dirname(osp.abspath(args.table_json)), exist_ok=True)
    with open(args.table_json, 'w') as f:
        json.dump(table, f, indent=1, ensure_ascii=False)
        f.write('\n')
    load_benchmark(args.table_json)
    for line in report:
        print(f'table: {line}')
    print(f'wrote {args.table_json}; render it with python '
          f'{osp.join(TOOLS, "benchmark_table.py")} {args.table_json} '
          '--write docs/benchmark.md')
    return report


def main(argv=None):
    args = parse_args(argv)
    jobs = plan(args)
    if args.dry_run:
        for job in jobs:
            print(f'{job.section}: {job.shell()}')
    else:
        os.makedirs(args.out_dir, exist_ok=True)
        results = []
        for job in jobs:
            results.append(run_job(job, args.out_dir))
            with open(osp.join(args.out_dir, 'summary.json'), 'w') as f:
                json.dump(results, f, indent=1)
        failed = [r for r in results if r['rc'] != 0]
        for r in results:
            print(f'{r["name"]}: rc {r["rc"]}, {r["seconds"]} s')
    if args.table_json:
        write_table(args)
    if not args.dry_run and failed:
        sys.exit(f'{len(failed)} of {len(results)} commands failed: '
                 f'{", ".join(r["name"] for r in failed)} (logs in '
                 f'{args.out_dir})')


if __name__ == '__main__':
    main()
