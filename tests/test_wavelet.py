"""The element-wise Haar transform against the convolution form (analytic
filters), on CPU and, where present, CUDA: values, odd sizes, gradients,
dtypes under autocast, channels-last, and how MobileMamba's wavelet branch
chooses between the two."""
import pytest
import torch

from mmtinyvim.models.backbones.mobilemamba import WTEMamba
from mmtinyvim.models.wavelet import (haar_analysis, haar_filters,
                                      haar_synthesis, is_haar)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
SIZES = [(6, 10), (7, 9), (1, 5), (2, 2)]


def rand(*shape, device='cpu', dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).to(device)


def max_rel(out, ref):
    return float((out - ref).abs().max() / ref.abs().max())


def test_haar_filters_are_the_analytic_half_weights():
    analysis, synthesis = haar_filters(3)
    half = 0.5
    expected = torch.tensor([[[half, half], [half, half]],       # LL
                             [[half, half], [-half, -half]],     # high H
                             [[half, -half], [half, -half]],     # high W
                             [[half, -half], [-half, half]]])    # HH
    # exactly +-1/2 in float32, so the element-wise form computes the same
    assert torch.equal(analysis[:, 0], expected.repeat(3, 1, 1))
    assert torch.equal(synthesis, analysis)


def test_is_haar():
    analysis, _ = haar_filters(5)
    assert is_haar(analysis)
    assert is_haar(analysis.double() + 1e-8)  # PyWavelets' float32 rounding
    assert not is_haar(-analysis)
    assert not is_haar(analysis[:, :, :, :1])
    assert not is_haar(analysis[:6])
    assert not is_haar(rand(20, 1, 2, 2))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('size', SIZES)
def test_elementwise_equals_convolution(device, size):
    channels = 3
    analysis, synthesis = haar_filters(channels)
    analysis, synthesis = analysis.to(device), synthesis.to(device)
    x = rand(2, channels, *size, device=device)
    bands = haar_analysis(x)
    conv_bands = haar_analysis(x, analysis)
    assert bands.shape == conv_bands.shape == (
        2, channels, 4, -(-size[0] // 2), -(-size[1] // 2))
    err_a = max_rel(bands, conv_bands)
    # synthesis of arbitrary bands, not only of analysed images
    other = rand(*bands.shape, device=device, seed=1)
    err_s = max_rel(haar_synthesis(other, None, size),
                    haar_synthesis(other, synthesis, size))
    back = haar_synthesis(bands, None, size)
    err_r = float((back - x).abs().max())
    print(f'\nHaar {device} {size}: analysis max|d|/max {err_a:.1e}, '
          f'synthesis {err_s:.1e}, round trip max|d| {err_r:.1e}')
    assert err_a <= 1e-6 and err_s <= 1e-6 and err_r <= 1e-5
    # band 1 is the high pass along H: top row minus bottom row (an odd
    # size is padded with zeros)
    top_left = torch.nn.functional.pad(x[:, :, :2, :2],
                                       (0, size[1] == 1, 0, size[0] == 1))
    assert torch.allclose(bands[:, :, 1, 0, 0],
                          (top_left[:, :, 0] - top_left[:, :, 1]).sum(-1) / 2,
                          atol=1e-6)


@pytest.mark.parametrize('device', DEVICES)
def test_float64_stays_float64_and_is_exact(device):
    analysis, synthesis = haar_filters(2, torch.float64)
    x = rand(1, 2, 5, 8, device=device, dtype=torch.float64)
    bands = haar_analysis(x)
    assert bands.dtype == torch.float64
    assert torch.allclose(bands, haar_analysis(x, analysis.to(device)),
                          rtol=0, atol=1e-14)
    assert torch.allclose(haar_synthesis(bands, None, (5, 8)), x, rtol=0,
                          atol=1e-14)


@pytest.mark.parametrize('device', DEVICES)
def test_gradients_equal_convolution(device):
    channels, size = 4, (7, 10)
    analysis, synthesis = (f.to(device) for f in haar_filters(channels))
    x = rand(2, channels, *size, device=device)
    weight = rand(2, channels, 4, 4, 5, device=device, seed=2)
    target = rand(2, channels, *size, device=device, seed=3)
    grads = []
    for filters in ((None, None), (analysis, synthesis)):
        leaf = x.clone().requires_grad_()
        bands = haar_analysis(leaf, filters[0]) * weight
        out = haar_synthesis(bands, filters[1], size)
        (out * target).sum().backward()
        grads.append(leaf.grad)
    err = max_rel(*grads)
    print(f'\nHaar {device} gradient max|d|/max {err:.1e}')
    assert err <= 1e-6


@pytest.mark.parametrize('device', DEVICES)
def test_float32_under_autocast_and_channels_last(device):
    dtype = torch.float16 if device == 'cuda' else torch.bfloat16
    x = rand(2, 8, 10, 12, device=device)
    with torch.autocast(device, dtype=dtype):
        bands = haar_analysis(x.to(dtype))
        back = haar_synthesis(bands.to(dtype), None, (10, 12))
        exact = haar_synthesis(haar_analysis(x), None, (10, 12))
    assert bands.dtype == back.dtype == exact.dtype == torch.float32
    assert torch.allclose(exact, x, atol=1e-6)
    cl = x.to(memory_format=torch.channels_last)
    assert torch.equal(haar_analysis(cl), haar_analysis(x))


def test_wte_mamba_uses_stored_filters():
    torch.manual_seed(0)
    module = WTEMamba(16, 3).eval()
    module.global_atten.scan_backend = 'torch'
    x = rand(2, 16, 9, 12)
    assert module.analytic_haar
    with torch.no_grad():
        fast = module(x)
        module.analytic_haar = False  # force the convolution form
        conv = module(x)
    err = max_rel(fast, conv)
    print(f'\nWTEMamba element-wise vs convolution: max|d|/max {err:.1e}')
    assert err <= 1e-5

    # other filters, loaded: used as stored (convolution form)
    state = module.state_dict()
    state['wt_filter'] = rand(64, 1, 2, 2, seed=4)
    module.load_state_dict(state)
    assert not module.analytic_haar
    with torch.no_grad():
        changed = module(x)
    assert max_rel(changed, conv) > 1e-2
    # back to Haar through a load
    state['wt_filter'] = haar_filters(16)[0]
    module.load_state_dict(state)
    assert module.analytic_haar
    with torch.no_grad():
        assert max_rel(module(x), fast) <= 1e-6
