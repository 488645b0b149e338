"""tools/analysis_tools/benchmark_all.py (one command for every table of
docs/benchmark.md) and benchmark.py --official (the official code timed in
the same process): arguments, the official models' build and fold on CPU,
the driver's plan (not run: the tools time on CUDA) and the filling of the
table JSON."""
import json
import os.path as osp
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from tests.modules import REPO, load_file

bench = load_file('tools/analysis_tools/benchmark.py', 'benchmark_tool')
driver = load_file('tools/analysis_tools/benchmark_all.py')
table_tool = load_file('tools/analysis_tools/benchmark_table.py')
BASE = REPO / 'docs' / 'benchmark_h200.json'
VARIANTS = bench.VARIANTS

# A stand-in for an official repository's model file: Conv+BN blocks with
# fuse() (TinyViM's and MobileMamba's Conv2d_BN), a distillation head that
# returns (class, distillation) logits in training. The real code is not in
# this repository.
OFFICIAL_MODEL = '''
import torch
import torch.nn as nn

CALLS = []


class ConvBN(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout))

    @torch.no_grad()
    def fuse(self):
        conv, bn = self
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 8), nn.ReLU(), ConvBN(8, 8))
        self.head = nn.Linear(8, num_classes)
        self.dist_head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.stem(x).mean((2, 3))
        if self.training:
            return self.head(x), self.dist_head(x)
        return (self.head(x) + self.dist_head(x)) / 2


def Fake_S(num_classes=1000, pretrained=False):
    return Net(num_classes)
'''
# MobileMamba's way: a module-level function that folds the whole network
REPLACE_BATCHNORM = '''

def replace_batchnorm(net):
    CALLS.append(net)
    for name, child in net.named_children():
        if hasattr(child, 'fuse'):
            setattr(net, name, child.fuse())
        else:
            replace_batchnorm(child)
'''
NOTHING_TO_FOLD = '''
import torch.nn as nn


def Plain(num_classes=1000):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
'''


@pytest.fixture
def official(tmp_path, monkeypatch):
    """Importable fake official modules: ``fake_official_fuse`` (blocks
    with fuse()), ``fake_official_rb`` (plus replace_batchnorm) and
    ``fake_official_plain`` (nothing to fold)."""
    (tmp_path / 'fake_official_fuse.py').write_text(OFFICIAL_MODEL)
    (tmp_path / 'fake_official_rb.py').write_text(OFFICIAL_MODEL +
                                                  REPLACE_BATCHNORM)
    (tmp_path / 'fake_official_plain.py').write_text(NOTHING_TO_FOLD)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ('fake_official_fuse', 'fake_official_rb',
                 'fake_official_plain'):
        sys.modules.pop(name, None)


def _randomise_batchnorms(model):
    # fresh BatchNorms fold to nearly the identity: make the fold matter
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features,
                                             generator=generator))
            m.running_var.copy_(torch.rand(m.num_features,
                                           generator=generator) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.num_features,
                                           generator=generator))
                m.bias.copy_(torch.randn(m.num_features,
                                         generator=generator))


# --------------------------------------------------------------------------
# benchmark.py --official


def test_official_spec_parses_into_the_variant_and_factory():
    args = bench.parse_args(['tinyvim-s', '--official',
                             'tinyvim-s=model.tinyvim:TinyViM_S', '--official',
                             'mobilemamba-t2=model.mobilemamba.mobilemamba:'
                             'MobileMamba_T2'])
    assert args.official_specs == {
        'tinyvim-s': ('tinyvim-s', 'model.tinyvim', 'TinyViM_S'),
        'mobilemamba-t2': ('mobilemamba-t2', 'model.mobilemamba.mobilemamba',
                           'MobileMamba_T2')}
    assert bench.official_configs('amp') == ('official', 'official_fused')
    assert bench.official_configs('train') == ('official', )


@pytest.mark.parametrize('spec, message', [
    ('model.tinyvim:TinyViM_S', 'expected NAME=MODULE:FUNCTION'),
    ('tinyvim-s=model.tinyvim', 'expected NAME=MODULE:FUNCTION'),
    ('tinyvim-s=:TinyViM_S', 'expected NAME=MODULE:FUNCTION'),
    ('tinyvim-x=model.tinyvim:TinyViM_S', "unknown variant 'tinyvim-x'"),
])
def test_bad_official_spec_is_one_clear_error(spec, message):
    with pytest.raises(SystemExit) as error:
        bench.parse_args(['--official', spec])
    assert message in str(error.value)
    # the valid names are listed
    assert ', '.join(VARIANTS) in str(error.value)


def test_official_given_twice_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(['--official', 'tinyvim-s=a:B', '--official',
                          'tinyvim-s=c:D'])
    assert '--official tinyvim-s=... given twice' in capsys.readouterr().err


def test_official_import_failure_says_to_put_the_repository_on_the_path():
    with pytest.raises(SystemExit, match='official repository\'s root on '
                       'PYTHONPATH') as error:
        bench.load_official('no_such_official_package.model', 'TinyViM_S')
    assert 'no_such_official_package' in str(error.value)


def test_missing_official_factory_lists_the_module_callables(official):
    with pytest.raises(SystemExit, match="no factory 'Fake_T'") as error:
        bench.load_official('fake_official_fuse', 'Fake_T')
    assert 'Fake_S' in str(error.value) and 'Net' in str(error.value)


@pytest.mark.parametrize('module', ['fake_official_fuse', 'fake_official_rb'])
def test_official_fold_keeps_the_outputs(official, module):
    model, found, resolution = bench.build_official('mobilemamba-t2', module,
                                                    'Fake_S')
    assert resolution == 192  # our variant's, not the factory's
    assert model.head.out_features == 1000
    _randomise_batchnorms(model)
    model.eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(x)
        folded = bench.fold_official(model, found)
        out = folded(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert reference.abs().max() > 0.1  # not a vacuous comparison
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    # the module's own replace_batchnorm is the fold where there is one
    calls = getattr(found, 'CALLS')
    assert bool(calls) == (module == 'fake_official_rb')
    assert not calls or calls[0] is model


def test_official_model_without_a_fold_is_refused(official):
    model, module, _ = bench.build_official('tinyvim-s',
                                            'fake_official_plain', 'Plain')
    with pytest.raises(SystemExit, match='nothing to fold'):
        bench.fold_official(model.eval(), module)


def test_official_training_forward_takes_the_first_logits(official):
    model, _, _ = bench.build_official('tinyvim-s', 'fake_official_fuse',
                                       'Fake_S')
    model.train()
    x = torch.randn(4, 3, 16, 16)
    assert isinstance(model(x), tuple)
    logits = bench.official_forward(model)(x)
    assert torch.is_tensor(logits) and logits.shape == (4, 1000)
    torch.testing.assert_close(logits, model.head(model.stem(x).mean((2, 3))))


# --------------------------------------------------------------------------
# the driver's plan


def _roots(tmp_path):
    """Directories laid out as clones of the two official repositories."""
    roots = {}
    for family, spec in driver.OFFICIAL.items():
        path = tmp_path / family / spec['file']
        path.parent.mkdir(parents=True)
        path.write_text('')
        roots[family] = str(tmp_path / family)
    return roots


def _plan(argv, lines=None):
    args = driver.parse_args(argv)
    return args, driver.plan(args, announce=(lines if lines is not None
                                             else []).append)


def test_plan_without_official_roots_skips_them_with_a_line(tmp_path):
    lines = []
    args, jobs = _plan(['--out-dir', str(tmp_path)], lines)
    assert [j.section for j in jobs] == (
        ['classifiers'] * 4 + ['kernels'] + ['profiles'] * 2 +
        ['dense'] * len(driver.DENSE_HEADS))
    assert all('--official' not in j.args and '--factory' not in j.args
               for j in jobs)
    assert all(j.pythonpath == [] for j in jobs)
    assert lines == [
        'classifiers: official TinyViM skipped (no --official-root-tinyvim)',
        'classifiers: official MobileMamba skipped (no '
        '--official-root-mobilemamba)',
        'profiles: official tinyvim-s skipped (no --official-root-tinyvim)',
        'profiles: official mobilemamba-b1 skipped (no '
        '--official-root-mobilemamba)']


def test_plan_times_the_official_models_in_their_familys_process(tmp_path):
    roots = _roots(tmp_path)
    lines = []
    args, jobs = _plan(['--only', 'classifiers', '--out-dir', str(tmp_path),
                        '--official-root-tinyvim', roots['tinyvim'],
                        '--official-root-mobilemamba',
                        roots['mobilemamba']], lines)
    assert lines == []
    assert [j.name for j in jobs] == [
        'classifiers_tinyvim_infer', 'classifiers_tinyvim_train',
        'classifiers_mobilemamba_infer', 'classifiers_mobilemamba_train']
    for job in jobs:
        family = job.name.split('_')[1]
        # the official root first, so that its package "model" is found
        assert job.pythonpath == [osp.abspath(roots[family])]
        # what the driver passes is a valid benchmark.py command line
        parsed = bench.parse_args(job.args)
        ours = [v for v in VARIANTS if v.startswith(family)]
        assert parsed.variants == ours
        assert sorted(parsed.official_specs) == sorted(ours)
        assert parsed.peers == ['resnet18']
        assert parsed.min_time == 3.0
        assert parsed.out == osp.join(str(tmp_path), job.name + '.json')
        if job.name.endswith('infer'):
            assert (parsed.configs, parsed.modes, parsed.batch) == (
                ['eager', 'api'], ['amp', 'fp32'], 256)
        else:
            assert (parsed.configs, parsed.modes, parsed.train_batch) == (
                ['engine', 'engine+hook'], ['train'], [128])
    assert parsed.official_specs['mobilemamba-b4'] == (
        'mobilemamba-b4', 'model.mobilemamba.mobilemamba', 'MobileMamba_B4')


def test_quick_plan_is_short_and_profiles_at_the_variants_size(tmp_path):
    roots = _roots(tmp_path)
    args, jobs = _plan(['--quick', '--only', 'profiles', 'kernels',
                        'classifiers', '--out-dir', str(tmp_path),
                        '--official-root-mobilemamba', roots['mobilemamba'],
                        '--profile-variants', 'mobilemamba-t2'])
    assert args.min_time == 0.5
    by_name = {j.name: j for j in jobs}
    assert sorted(by_name) == sorted([
        'classifiers_tinyvim_infer', 'classifiers_tinyvim_train',
        'classifiers_mobilemamba_infer', 'classifiers_mobilemamba_train',
        'kernels', 'profile_mobilemamba-t2'])
    assert bench.parse_args(
        by_name['classifiers_tinyvim_infer'].args).variants == ['tinyvim-s']
    assert by_name['kernels'].args[:3] == ['tinyvim-s', 'mobilemamba-t2',
                                           '--quick']
    profile = by_name['profile_mobilemamba-t2']
    assert profile.pythonpath == [osp.abspath(roots['mobilemamba'])]
    profile_step = load_file('tools/analysis_tools/profile_step.py')
    parsed = profile_step.parse_args(profile.args)
    assert parsed.variants == ['mobilemamba-t2']
    assert parsed.factory == ['model.mobilemamba.mobilemamba:MobileMamba_T2']
    assert parsed.label == ['official-mobilemamba-t2']
    # ours and the official at the same size: the variant's, not 224
    assert (parsed.img_size, parsed.mode, parsed.batch) == (192, 'train', 128)


def test_dense_plan_puts_each_head_next_to_its_r50_twin(tmp_path):
    args, jobs = _plan(['--only', 'dense', '--out-dir', str(tmp_path),
                        '--dense-heads', 'maskrcnn', 'fpn',
                        '--dense-variants', 'tinyvim-s', 'mobilemamba-t2'])
    assert [j.name for j in jobs] == ['dense_maskrcnn', 'dense_fpn']
    for job, ours, twin in (
            (jobs[0], ['configs/maskrcnn_tinyvim_s_coco.py',
                       'configs/maskrcnn_mobilemamba_t2_coco.py'],
             'mask-rcnn_r50_fpn_1x_coco.py'),
            (jobs[1], ['configs/fpn_tinyvim_s_ade20k.py',
                       'configs/fpn_mobilemamba_t2_ade20k.py'],
             'fpn_r50_4xb4-160k_ade20k-512x512.py')):
        parsed = bench.parse_args(job.args)
        assert parsed.parts_only
        assert parsed.parts_config == parsed.step_config
        assert parsed.parts_config[:2] == ours
        assert osp.basename(parsed.parts_config[2]) == twin
        assert osp.isfile(parsed.parts_config[2])
    # the detector inference: ours, Mask R-CNN only
    assert bench.parse_args(jobs[0].args).det_config == [
        'configs/maskrcnn_tinyvim_s_coco.py',
        'configs/maskrcnn_mobilemamba_t2_coco.py']
    assert bench.parse_args(jobs[1].args).det_config == []


@pytest.mark.parametrize('argv, message', [
    (['--variants', 'tinyvim-x'], "--variants: unknown variant 'tinyvim-x'"),
    (['--profile-variants', 'mm'], "--profile-variants: unknown variant"),
    (['--official-root-tinyvim', 'no/such/dir'], 'no model/tinyvim.py'),
    (['--only', 'everything'], "invalid choice: 'everything'"),
    (['--min-time', '-1'], '--min-time must be >= 0'),
])
def test_driver_arguments_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit):
        driver.parse_args(argv)
    assert message in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, monkeypatch,
                                                  capsys):
    def refuse(*args, **kwargs):
        raise AssertionError('a dry run started a command')

    monkeypatch.setattr(driver.subprocess, 'Popen', refuse)
    driver.main(['--dry-run', '--quick', '--only', 'kernels', '--out-dir',
                 str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert 'kernels: python tools/analysis_tools/bench_kernels.py ' \
        'tinyvim-s mobilemamba-t2 --quick --out' in out
    assert not (tmp_path / 'out').exists()


def test_a_job_runs_with_the_official_root_first_and_is_logged(tmp_path):
    script = tmp_path / 'show_path.py'
    script.write_text(textwrap.dedent('''
        import os, sys
        print(os.environ['PYTHONPATH'].split(os.pathsep)[0])
        sys.exit(3)
    '''))
    job = driver.Job('kernels', 'show', str(script), [], ['/official/root'])
    result = driver.run_job(job, str(tmp_path))
    assert result['rc'] == 3
    assert (tmp_path / 'show.log').read_text() == '/official/root\n'


# --------------------------------------------------------------------------
# the table JSON


def _records(variants, scale=1.0):
    """benchmark.py records of every table cell of ``variants``, with
    img/s distinct per cell; plus ones that must not reach the table."""
    records = []
    for k, name in enumerate(variants):
        base = 1000 * (k + 1) * scale
        for mode in ('amp', 'fp32'):
            for j, config in enumerate(driver.INFERENCE_COLUMNS):
                records.append(dict(model=name, mode=mode, config=config,
                                    batch=256, resolution=224,
                                    img_s=base + j + (mode == 'fp32') * 10.4))
        for j, config in enumerate(driver.TRAINING_COLUMNS):
            records.append(dict(model=name, mode='train', config=config,
                                batch=128, resolution=224,
                                img_s=base / 4 + j))
    records += [
        dict(model='resnet18', mode='amp', config='eager', batch=256,
             img_s=5.0),
        dict(model=variants[0], mode='train', config='engine', batch=64,
             img_s=7.0),
        dict(model=variants[0], mode='amp', config='api', batch=256,
             error='OutOfMemoryError: ...'),
    ]
    return records


def _base():
    return json.loads(BASE.read_text())


def test_table_fills_the_measured_cells_and_keeps_the_others():
    base = _base()
    table, report = driver.fill_table(base, _records(['tinyvim-s']),
                                      base['device'])
    row = table['inference']['rows'][0]
    assert row['variant'] == 'TinyViM-S'
    assert row['amp'] == dict(official=1000, official_fused=1001,
                              mmtinyvim_eager=1002, mmtinyvim_api=1003)
    assert row['fp32']['official'] == 1010  # 1010.4, rounded
    training = table['training']['rows'][0]
    assert (training['variant'], training['official'],
            training['mmtinyvim_engine'],
            training['mmtinyvim_engine_hook']) == ('TinyViM-S', 250, 251, 252)
    # the other rows as they were, the base untouched
    assert table['inference']['rows'][1:] == base['inference']['rows'][1:]
    assert table['training']['rows'][1:] == base['training']['rows'][1:]
    assert base == _base()
    # one row measured: the columns stay stale, the official source too
    assert table['stale'] == base['stale']
    assert (table['source'], table['date']) == (base['source'], base['date'])
    assert report[0] == 'filled 11 cells'
    assert any(line.startswith('still stale') for line in report)
    assert table_tool.STALE_MARK in table_tool.render(table)


def test_table_of_every_cell_is_no_longer_stale_and_adds_rows():
    base = _base()
    table, report = driver.fill_table(base, _records(VARIANTS), 'NVIDIA H100',
                                      today='2027-01-02')
    assert 'stale' not in table
    assert table['device'] == 'NVIDIA H100'
    assert table['date'] == '2027-01-02'
    assert 'benchmark_all.py' in table['source']
    # the training rows the base lacks, in the variants' order
    assert [r['variant'] for r in table['training']['rows']] == [
        'TinyViM-S', 'TinyViM-B', 'TinyViM-L', 'MobileMamba-T2',
        'MobileMamba-T4', 'MobileMamba-S6', 'MobileMamba-B1',
        'MobileMamba-B2', 'MobileMamba-B4']
    assert 'training: added the row TinyViM-B' in report
    assert table_tool.STALE_MARK not in table_tool.render(table)


def test_table_refuses_to_mix_gpu_kinds():
    with pytest.raises(SystemExit, match='would mix GPU kinds'):
        driver.fill_table(_base(), _records(['tinyvim-s']), 'NVIDIA H100')


def test_table_adds_no_half_measured_row():
    records = [r for r in _records(['tinyvim-b'])
               if r['config'] != 'engine+hook']
    table, report = driver.fill_table(_base(), records, 'NVIDIA H200')
    assert 'TinyViM-B' not in [r['variant'] for r in
                               table['training']['rows']]
    assert ('training: no TinyViM-B row, and not every cell of one was '
            'measured: not added') in report


def test_table_json_from_an_out_dir_is_valid_for_benchmark_table(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    records = _records(['tinyvim-s', 'mobilemamba-t2'])
    for k, part in enumerate((records[:20], records[20:])):
        (out / f'classifiers_part{k}_infer.json').write_text(json.dumps(
            dict(env=dict(gpu='NVIDIA H200'), records=part)))
    path = tmp_path / 'table.json'
    driver.main(['--dry-run', '--only', 'kernels', '--out-dir', str(out),
                 '--table-json', str(path)])
    table = table_tool.load_benchmark(str(path))
    rows = {r['variant']: r for r in table['inference']['rows']}
    assert rows['MobileMamba-T2']['amp']['mmtinyvim_api'] == 2003
    # the base row's resolution stays; ours still marked (other rows old)
    mark = table_tool.STALE_MARK
    assert (f'| MobileMamba-T2 | 192 | amp | 2000 | 2001 | 2002{mark} | '
            f'2003{mark} |') in table_tool.render(table)


def test_table_refuses_records_of_two_gpus(tmp_path):
    for k, gpu in enumerate(('NVIDIA H100', 'NVIDIA H200')):
        (tmp_path / f'classifiers_{k}.json').write_text(json.dumps(
            dict(env=dict(gpu=gpu), records=[])))
    with pytest.raises(SystemExit, match='records of several GPUs'):
        driver.collect_records(str(tmp_path))


def test_classifier_jobs_time_official_training_at_the_training_batch():
    """The official models' training jobs run at --train-batch (they once
    ran at the inference batch), inference at --batch; training drops
    deploy and times configurations equal without it once."""
    args = bench.parse_args([
        'tinyvim-s', '--peers', 'resnet18', '--modes', 'amp', 'train',
        '--configs', 'eager', 'deploy+graph', 'graph', '--batch', '256',
        '--train-batch', '64', '128',
        '--official', 'tinyvim-s=model.tinyvim:TinyViM_S'])
    jobs = bench.classifier_jobs(args)
    official = [j for j in jobs if j[2].startswith('official')]
    assert official == [('tinyvim-s', 'amp', 'official', 256),
                        ('tinyvim-s', 'amp', 'official_fused', 256),
                        ('tinyvim-s', 'train', 'official', 64),
                        ('tinyvim-s', 'train', 'official', 128)]
    ours = [j for j in jobs if j[0] == 'tinyvim-s' and j not in official]
    assert ours == [('tinyvim-s', 'amp', 'eager', 256),
                    ('tinyvim-s', 'amp', 'deploy+graph', 256),
                    ('tinyvim-s', 'amp', 'graph', 256),
                    ('tinyvim-s', 'train', 'eager', 64),
                    ('tinyvim-s', 'train', 'eager', 128),
                    ('tinyvim-s', 'train', 'graph', 64),
                    ('tinyvim-s', 'train', 'graph', 128)]
    assert len(jobs) == len(set(jobs))
    assert all(batch in (64, 128) for _, mode, _, batch in jobs
               if mode == 'train')
