"""Bad tensors given to the backbones: float64 / float16 / bfloat16 batches
are cast to the weights' dtype, other dtypes are refused with one message,
and an empty batch gives correctly shaped empty feature maps."""
import pytest
import torch

from mmtinyvim.models.backbones.mobilemamba import MobileMamba
from mmtinyvim.models.backbones.tinyvim import TinyViM

FAMILIES = [(TinyViM, 's'), (MobileMamba, 't2')]


@pytest.fixture(scope='module', params=FAMILIES,
                ids=[cls.__name__ for cls, _ in FAMILIES])
def backbone(request):
    cls, arch = request.param
    torch.manual_seed(0)
    return cls(arch=arch, out_indices=(0, 1, 2, 3))


@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float16,
                                   torch.bfloat16])
def test_other_float_dtypes_are_cast_to_the_weights_dtype(backbone, dtype,
                                                          training):
    backbone.train(training)
    x = torch.randn(2, 3, 64, 64).to(dtype)
    with torch.no_grad():
        outs = backbone(x)
        expected = backbone(x.float())  # what the cast input gives
    for out, ref in zip(outs, expected):
        assert out.dtype == torch.float32
        if not training:  # batch statistics make train mode differ anyway
            torch.testing.assert_close(out, ref)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('dtype', [torch.uint8, torch.int64,
                                   torch.complex64])
def test_other_dtypes_are_refused_naming_the_dtype(backbone, dtype):
    name = type(backbone).__name__
    with pytest.raises(ValueError) as err:
        backbone(torch.zeros(1, 3, 64, 64, dtype=dtype))
    print(f'\n{err.value}')
    assert str(err.value).startswith(
        f'{name} expects a floating-point image batch (float32, float64, '
        "float16, bfloat16; it is cast to the weights' dtype), got "
        f'{dtype}')
    assert str(err.value).endswith('normalise the images first') == (
        dtype != torch.complex64)


@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('size', [(64, 64), (65, 97)])
def test_empty_batch_gives_empty_maps_of_the_right_shape(backbone, training,
                                                         size):
    backbone.train(training)
    with torch.no_grad():
        full = backbone(torch.randn(2, 3, *size))
    empty = backbone(torch.randn(0, 3, *size))
    assert len(empty) == len(full) == len(backbone.out_channels)
    for out, ref, channels in zip(empty, full, backbone.out_channels):
        assert out.shape == (0, ) + ref.shape[1:]
        assert out.shape[1] == channels
        assert out.dtype == ref.dtype
    if training:  # a loss on the empty maps can be backpropagated
        backbone.zero_grad()
        sum(out.sum() for out in empty).backward()


def test_empty_batch_of_another_dtype(backbone):
    backbone.eval()
    with torch.no_grad():
        outs = backbone(torch.zeros(0, 3, 64, 64, dtype=torch.float64))
    assert all(out.dtype == torch.float32 and out.shape[0] == 0
               for out in outs)
