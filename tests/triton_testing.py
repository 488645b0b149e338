"""What the Triton kernel test files share: the import of a family's
kernels (interpreted on CPU) and the check of the ops' two forms."""
import importlib
import os

import torch

CUDA = torch.cuda.is_available()
DEVICE = torch.device('cuda' if CUDA else 'cpu')


def import_kernels(family: str):
    """``mmtinyvim.ops.<family>.triton_kernels``: compiled on a CUDA
    machine; without CUDA run on CPU tensors by Triton's interpreter, which
    triton reads when a kernel is defined, so ``TRITON_INTERPRET=1`` is set
    before the first import and the kernel test files run in their own
    pytest process (scripts/test.sh)."""
    if not CUDA:
        os.environ.setdefault('TRITON_INTERPRET', '1')
    name = f'mmtinyvim.ops.{family}.triton_kernels'
    module = importlib.import_module(name)
    assert CUDA or module.INTERPRETED, (
        f'{name} was imported before TRITON_INTERPRET=1 was set; run the '
        'kernel test files in their own process')
    return module


# The two forms (see mmtinyvim.ops._triton): eagerly through the family's
# autograd.Function, with no custom-op call; under torch.compile through its
# custom ops, the forward op a node of dynamo's graph and the backward op
# called where AOTAutograd traces the gradient.


def check_forms(monkeypatch, kernels, backward_ops, graph_op, fn, inputs):
    """Run ``fn(*inputs)`` eagerly and compiled (forward and backward) and
    assert the forms above. ``backward_ops``: names of ``kernels``' custom
    ops the gradient uses; ``graph_op``: the forward op's target as dynamo's
    graph prints it. Returns nothing; fails with what was seen."""
    used = []
    for name in backward_ops:
        op = getattr(kernels, name)
        assert isinstance(op, torch._library.custom_ops.CustomOpDef), name
        monkeypatch.setattr(kernels, name, lambda *a, _op=op, _n=name:
                            used.append(_n) or _op(*a))
    leaves = [t for t in inputs
              if isinstance(t, torch.Tensor) and t.requires_grad]

    def grads(out):
        weights = torch.randn(out.shape, generator=torch.Generator()
                              .manual_seed(0)).to(out)
        return torch.autograd.grad(out, leaves, weights)

    eager = fn(*inputs)
    eager_grads = grads(eager)
    assert not used, f'eager calls went through the custom ops {used}'
    graph_ops = []

    def backend(gm, example_inputs):
        graph_ops.extend(str(n.target) for n in gm.graph.nodes
                         if n.op == 'call_function')
        return torch._dynamo.lookup_backend('aot_eager')(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=backend, fullgraph=True)
    out = compiled(*inputs)
    out_grads = grads(out)
    assert graph_op in graph_ops, graph_ops
    assert sorted(set(used)) == sorted(backward_ops), used
    assert torch.allclose(out, eager)
    for a, b in zip(out_grads, eager_grads):
        assert torch.allclose(a, b)
