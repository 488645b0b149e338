"""mmtinyvim.accelerate: the one-call fast paths give the network's outputs
(and gradients), and refuse what a recorded CUDA graph cannot replay."""
import copy

import pytest
import torch

from mmtinyvim.accelerate import for_inference, for_training
from mmtinyvim.models.classifiers import build_classifier

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='CUDA graphs need a GPU (run on the device machine; results in '
    'docs/benchmark.md)')


class Logits(torch.nn.Module):

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


def _model(variant, device='cpu'):
    torch.manual_seed(0)
    classifier, _ = build_classifier(variant)
    return Logits(classifier).to(device).eval()


def _relative(out, ref):
    return float((out.double() - ref.double()).abs().max() /
                 ref.double().std())


@pytest.mark.parametrize('variant', ['tinyvim-s', 'mobilemamba-t2'])
def test_inference_path_equals_the_network_on_cpu(variant):
    model = _model(variant)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
    predict = for_inference(copy.deepcopy(model), x, compile=False)
    error = _relative(predict(x), reference)
    print(f'{variant}: for_inference (deploy + channels-last) vs eval '
          f'max|d|/std {error:.2e}')
    assert error < 1e-4
    # not graphed on the CPU: other batch sizes are fine
    assert predict(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_bad_arguments_are_refused():
    model = _model('tinyvim-s')
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match='cuda_graph=True needs the model '
                       'and the example input on a CUDA device'):
        for_inference(model, x, cuda_graph=True)
    with pytest.raises(ValueError, match=r'shape \(N, C, H, W\), got '
                       r'torch.Size\(\[3, 64, 64\]\)'):
        for_inference(model, x[0])
    with pytest.raises(ValueError, match='dtype must be None, torch.float16 '
                       'or torch.bfloat16, got torch.int8'):
        for_inference(model, x, dtype=torch.int8)
    with pytest.raises(ValueError, match='for_training records CUDA graphs: '
                       'it needs the model and the example input on a CUDA '
                       'device'):
        for_training(model, x)


@needs_cuda
@pytest.mark.parametrize('variant', ['tinyvim-s', 'mobilemamba-t2'])
def test_graphed_inference_on_cuda(variant):
    model = _model(variant, 'cuda')
    x = torch.randn(8, 3, 128, 128, device='cuda')
    with torch.no_grad():
        reference = model(x)
    predict = for_inference(copy.deepcopy(model), x)
    y = torch.randn_like(x)
    with torch.no_grad():
        reference_y = model(y)
    first, second = predict(x), predict(y)  # outputs are not overwritten
    errors = _relative(first, reference), _relative(second, reference_y)
    print(f'{variant}: for_inference (deploy+cl+compile+graph, fp32/TF32) '
          f'vs eval max|d|/std {errors[0]:.2e} / {errors[1]:.2e}')
    assert max(errors) < 1e-2  # TF32 convolutions and matmuls
    with pytest.raises(ValueError,
                       match=r'recorded for input \(8, 3, 128, 128\) '
                       r'torch.float32 on cuda:0; got \(4, 3, 128, 128\)'):
        predict(x[:4])


@needs_cuda
def test_graphed_training_gradients_on_cuda():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _model('mobilemamba-t2', 'cuda').train()
    graphed_model = copy.deepcopy(model)
    x = torch.randn(4, 3, 128, 128, device='cuda')
    model(x).float().square().mean().backward()
    forward = for_training(graphed_model, x, dtype=None)
    forward(x).float().square().mean().backward()
    names, reference, graphed = [], [], []
    for (name, p), p_g in zip(model.named_parameters(),
                              graphed_model.parameters()):
        if p.grad is not None:
            names.append(name)
            reference.append(p.grad.flatten())
            graphed.append(p_g.grad.flatten())
    errors = [float((g - r).abs().max()) for g, r in zip(graphed, reference)]
    scale = float(torch.cat(reference).std())
    worst = max(range(len(errors)), key=errors.__getitem__)
    print(f'for_training vs eager: worst gradient max|d| / std(all '
          f'gradients) {errors[worst] / scale:.2e} ({names[worst]})')
    assert errors[worst] / scale < 1e-3
