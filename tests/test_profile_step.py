"""tools/analysis_tools/profile_step.py: kernel names fall into the right
categories, and the tool's CPU plumbing produces a consistent record (the
GPU profile itself is device evidence in docs/benchmark.md)."""
import pytest

from tests.modules import load_file

tool = load_file('tools/analysis_tools/profile_step.py')


@pytest.mark.parametrize('name, category', [
    ('void cudnn::bn_fw_tr_1C11_kernel_NCHW<__half, float, 512, true, 1>',
     'batchnorm'),
    ('void cudnn::bn_bw_1C11_kernel_new<__half, float>', 'batchnorm'),
    ('void batch_norm_backward_reduce_kernel<float>', 'batchnorm'),
    ('_bn_train_fwd_kernel', 'batchnorm'),
    ('void selective_scan_bwd_kernel<Ktraits>(SSMParamsBwd)', 'scan'),
    ('_scan_bwd_kernel', 'scan'),
    ('_laplace_bwd_kernel', 'haar/laplace (ours)'),
    ('void cudnn::nchwToNhwcKernel<__half, __half, float>', 'layout'),
    ('sm90_xmma_fprop_implicit_gemm_f16f16', 'conv/gemm'),
    ('void at::native::vectorized_elementwise_kernel<4, GeluCUDA>',
     'element-wise'),
    ('void at::native::reduce_kernel<512, 1, ReduceOp<float>>', 'reduction'),
    ('void at::native::upsample_bilinear2d_out_frame<c10::Half>',
     'pool/interp'),
    ('multi_tensor_apply_kernel<AdamFunctor>', 'optimizer'),
    ('something_unheard_of', 'other'),
])
def test_categories(name, category):
    assert tool.categorize(name) == category


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        tool.parse_args([])
    with pytest.raises(SystemExit):
        tool.parse_args(['tinyvim-s', '--fuse'])  # --fuse is inference only
    with pytest.raises(SystemExit):
        tool.parse_args(['--factory', 'a:b', '--label', 'x', '--label', 'y'])
    assert tool.parse_args(['tinyvim-s', '--mode', 'infer']).batch == 256


def test_cpu_plumbing(tmp_path):
    out = tmp_path / 'profile.json'
    records = tool.main(['mobilemamba-t2', '--device', 'cpu', '--mode',
                         'infer', '--batch', '1', '--img-size', '32',
                         '--warmup', '0', '--steps', '1', '--top', '3',
                         '--fuse', '--out', str(out)])
    (record,) = records
    assert record['fused'] and record['img_size'] == 32
    assert len(record['top']) == 3
    total = sum(c['ms'] for c in record['categories'].values())
    assert total == pytest.approx(record['kernel_ms'], rel=1e-6)
    assert out.read_text().count('"label": "mobilemamba-t2"') == 1


def test_host_phases_and_compile_count_of_a_training_step():
    (record,) = tool.main(['mobilemamba-t2', '--device', 'cpu', '--mode',
                           'train', '--batch', '2', '--img-size', '32',
                           '--warmup', '1', '--steps', '1', '--top', '1'])
    phases = record['host_ms']
    assert set(phases) == {'forward', 'backward', 'optimizer', 'final sync'}
    assert all(ms >= 0 for ms in phases.values())
    # on CPU the host phases are the step: they cannot exceed its wall time
    assert sum(phases.values()) <= record['wall_ms'] * 1.001
    assert phases['forward'] > 0 and phases['backward'] > 0
    # no Triton kernel runs on CPU outside the interpreter: nothing compiles
    assert record['triton_compiles'] in (0, None)


def test_triton_compiles_counts_cache_misses(monkeypatch):
    jit = pytest.importorskip('triton.runtime.jit')
    calls = []
    monkeypatch.setattr(jit.JITFunction, '_do_compile',
                        lambda self, *a, **k: calls.append(a) or 'kernel',
                        raising=False)
    with tool.TritonCompiles() as compiles:
        assert jit.JITFunction._do_compile(object(), 'key') == 'kernel'
        assert jit.JITFunction._do_compile(object(), 'key') == 'kernel'
    assert compiles.count == 2 and len(calls) == 2
    # restored on exit
    assert jit.JITFunction._do_compile(object(), 'key') == 'kernel'
    assert len(calls) == 3 and compiles.count == 2
