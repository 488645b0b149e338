"""mmtinyvim.engine: the one-call fast paths give the network's outputs
(and gradients), and refuse what a recorded CUDA graph cannot replay."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from mmtinyvim.engine import for_inference, for_training
from mmtinyvim.engine import ClassifierLogits
from mmtinyvim.models.backbones import TinyViM
from mmtinyvim.models.zoo import build_classifier
from tests.golden import plain_network
from tests.modules import load_file

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='CUDA graphs need a GPU (run on the device machine; results in '
    'docs/benchmark.md)')


def _model(variant, device='cpu'):
    torch.manual_seed(0)
    classifier, _ = build_classifier(variant)
    return ClassifierLogits(classifier).to(device).eval()


def _relative(out, ref):
    out, ref = out.detach().double(), ref.detach().double()
    return float((out - ref).abs().max() / ref.std())


@pytest.mark.parametrize('variant', ['tinyvim-s', 'mobilemamba-t2'])
def test_inference_path_equals_the_network_on_cpu(variant):
    model = plain_network(_model(variant))
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


def test_feature_maps_come_back_in_the_layout_of_the_network_as_built():
    # for_inference runs channels-last; mmcv's RoIAlign reads NCHW memory
    # and ignores strides, so a detector's features must come back NCHW
    torch.manual_seed(0)
    backbone = plain_network(TinyViM(arch='s', out_indices=(0, 1, 2, 3)))
    backbone.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        reference = backbone(x)
    predict = for_inference(copy.deepcopy(backbone), x, compile=False)
    outputs = predict(x)
    assert all(o.is_contiguous() for o in outputs)
    errors = [_relative(o, r) for o, r in zip(outputs, reference)]
    print(f'for_inference feature maps vs eval: max|d|/std {max(errors):.2e}')
    assert max(errors) < 1e-4


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
    model = plain_network(_model(variant, 'cuda'))
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


def _gradient_difference(model, reference):
    """(worst max|d| of a parameter's gradient / std of all gradients,
    that parameter's name)."""
    errors, grads = {}, []
    for (name, p), p_g in zip(reference.named_parameters(),
                              model.parameters()):
        if p.grad is not None:
            errors[name] = float((p_g.grad - p.grad).abs().max())
            grads.append(p.grad.flatten())
    worst = max(errors, key=errors.get)
    return errors[worst] / float(torch.cat(grads).std()), worst


@needs_cuda
@pytest.mark.parametrize('variant', ['tinyvim-s', 'mobilemamba-t2'])
def test_graphed_training_gradients_on_cuda(variant):
    """for_training's gradients against the eager network of the same
    memory format (fp32, TF32 off); for_training's default is
    channels-last, whose own effect is printed for information."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    eager = _model(variant, 'cuda').train()
    x = torch.randn(4, 3, 128, 128, device='cuda')
    models = {}
    for channels_last in (False, True):
        reference = copy.deepcopy(eager)
        memory_format = (torch.channels_last if channels_last else
                         torch.contiguous_format)
        reference.to(memory_format=memory_format)
        reference(x.contiguous(memory_format=memory_format)).square().mean(
        ).backward()
        graphed = copy.deepcopy(eager)
        forward = for_training(graphed, x, dtype=None,
                               channels_last=channels_last)
        forward(x).square().mean().backward()
        models[channels_last] = reference, graphed
    errors = {cl: _gradient_difference(graphed, reference)
              for cl, (reference, graphed) in models.items()}
    layout = _gradient_difference(models[True][0], models[False][0])
    print(f'{variant}: for_training vs eager, gradients max|d| / std(all '
          f'gradients): contiguous {errors[False][0]:.2e} '
          f'({errors[False][1]}), channels-last {errors[True][0]:.2e} '
          f'({errors[True][1]}); eager channels-last vs contiguous '
          f'{layout[0]:.2e}')
    # graph vs eager differ by atomics in the backward (docs/benchmark.md)
    assert max(errors[False][0], errors[True][0]) < 1e-3


class _CountingRecorder:
    """Stands in for the CUDA-graph recorder on the CPU: 'replays' the
    module's own forward and counts recordings and replays."""

    def __init__(self):
        self.recorded, self.replayed = [], 0

    def __call__(self, module, sample, dtype):
        # the recorder must see the module's own forward, not the dispatcher
        assert 'forward' not in module.__dict__
        self.recorded.append((tuple(sample.shape), dtype))
        forward = module.forward

        def replay(images):
            self.replayed += 1
            return forward(images)

        return replay


def test_training_graphs_dispatch():
    from mmtinyvim.engine import TrainingGraphs
    torch.manual_seed(0)
    backbone = build_classifier('mobilemamba-t2')[0].backbone
    reference = copy.deepcopy(backbone).train()
    recorder = _CountingRecorder()
    dispatcher = TrainingGraphs(backbone.train(), record=recorder,
                                max_graphs=2).install()
    assert backbone.forward is dispatcher
    x = torch.randn(2, 3, 64, 64)
    expected = reference.to(memory_format=torch.channels_last)(
        x.contiguous(memory_format=torch.channels_last))
    error = max(_relative(a, b) for a, b in zip(backbone(x), expected))
    print(f'TrainingGraphs vs the channels-last module: max|d|/std '
          f'{error:.2e}')
    assert error < 1e-6
    assert recorder.recorded == [((2, 3, 64, 64), None)]
    assert recorder.replayed == 1 and backbone.forward is dispatcher
    backbone(torch.randn(2, 3, 64, 64))  # same shape: replayed
    assert recorder.replayed == 2
    backbone(torch.randn(3, 3, 64, 64))  # a second shape: recorded
    assert recorder.recorded[1] == ((3, 3, 64, 64), None)
    with pytest.warns(UserWarning, match=r'training batch \(4, 3, 64, 64\)'
                      r'.* runs eagerly: graphs are recorded for 2 batch '
                      r'shapes at most'):
        backbone(torch.randn(4, 3, 64, 64))
    with torch.no_grad():
        backbone(x)  # no gradients: eager
    backbone.eval()
    backbone(x)  # evaluation: eager
    assert recorder.replayed == 3 and len(recorder.recorded) == 2
    # the state dict is the module's own: checkpoints stay loadable
    assert backbone.state_dict().keys() == reference.state_dict().keys()


def test_training_graphs_pad_batches_to_shared_shapes():
    """Detection batches vary in size: a batch is padded to the smallest
    listed shape that holds it (within max_padding) and the outputs are
    cropped back, equal to the module run on that padded batch; a batch no
    listed shape holds within the limit gets a graph of its own size."""
    from mmtinyvim.engine import TrainingGraphs
    torch.manual_seed(0)
    backbone = TinyViM('s').train()
    reference = copy.deepcopy(backbone).to(memory_format=torch.channels_last)
    recorder = _CountingRecorder()
    TrainingGraphs(backbone, record=recorder, max_graphs=3,
                   batch_shapes=[(64, 128), (128, 64), (96, 128)],
                   max_padding=1.5).install()
    x = torch.randn(2, 3, 64, 96)  # padded to 64x128 (4/3 of its pixels)
    outs = backbone(x)
    assert recorder.recorded == [((2, 3, 64, 128), None)]
    padded = reference(F.pad(x, (0, 32, 0, 0)))
    assert [o.shape[2:] for o in outs] == [
        (16, 24), (8, 12), (4, 6), (2, 3)]
    for out, full in zip(outs, padded):
        assert torch.equal(out, full[..., :out.shape[2], :out.shape[3]])
    # in the layout of the network as built (mmcv's RoIAlign reads NCHW)
    assert all(o.is_contiguous() for o in outs)
    # the gradients reach the module through the crop
    sum(o.square().mean() for o in outs).backward()
    assert all(p.grad is not None for p in backbone.parameters()
               if p.requires_grad)
    backbone(torch.randn(2, 3, 64, 128))  # fits exactly: same graphs
    assert len(recorder.recorded) == 1 and recorder.replayed == 2
    backbone(torch.randn(2, 3, 32, 64))  # 64x128 is 4x its pixels: own size
    assert recorder.recorded[-1] == ((2, 3, 32, 64), None)
    backbone(torch.randn(2, 3, 128, 64))
    assert recorder.recorded[-1] == ((2, 3, 128, 64), None)


@needs_cuda
@pytest.mark.parametrize('amp', [False, True])
def test_training_graphs_pad_and_crop_on_cuda(amp):
    """Real CUDA graphs, as a detector trains: TinyViM-S with batch_shapes,
    batches smaller than the shape they are padded to. Outputs and
    gradients over three steps equal the eager channels-last backbone run
    on the same padded batches (fp32 with TF32 off; and under AMP)."""
    from mmtinyvim.engine import TrainingGraphs
    flags = (torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.manual_seed(0)
        eager = TinyViM('s').cuda().train().to(
            memory_format=torch.channels_last)
        graphed = copy.deepcopy(eager)
        dispatcher = TrainingGraphs(graphed, batch_shapes=[(96, 160)]
                                    ).install()
        output_errors, grad_errors = [], []
        for height, width in ((96, 128), (64, 160), (96, 128)):
            x = torch.randn(2, 3, height, width, device='cuda')
            padded = F.pad(x, (0, 160 - width, 0, 96 - height))
            with torch.autocast('cuda', torch.float16, enabled=amp):
                outs = graphed(x)
                full = eager(padded.contiguous(
                    memory_format=torch.channels_last))
            refs = [f[..., :o.shape[2], :o.shape[3]]
                    for o, f in zip(outs, full)]
            output_errors.append(max(_relative(o, r)
                                     for o, r in zip(outs, refs)))
            weights = [torch.randn_like(r, dtype=torch.float32)
                       for r in refs]
            for features in (outs, refs):
                sum((f.float() * w).mean()
                    for f, w in zip(features, weights)).backward()
            grad_errors.append(_gradient_difference(graphed, eager)[0])
            for model in (graphed, eager):
                model.zero_grad(set_to_none=True)
        assert len(dispatcher.graphs) == 1  # both sizes share the shape
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags
    print(f'TrainingGraphs (padded to 96x160, AMP {amp}) vs eager on the '
          f'padded batch: outputs max|d|/std {output_errors}, gradients '
          f'max|d|/std(all) {grad_errors}')
    assert max(output_errors) < (2e-2 if amp else 1e-4)
    assert max(grad_errors) < (2e-2 if amp else 1e-3)


def test_training_graphs_run_a_second_call_before_backward_eagerly():
    """The graphs' buffers hold one call's activations until its backward
    has run: a second call of that shape in between runs eagerly instead of
    overwriting them."""
    from mmtinyvim.engine import TrainingGraphs
    torch.manual_seed(0)
    backbone = TinyViM('s').train()
    recorder = _CountingRecorder()
    TrainingGraphs(backbone, record=recorder).install()
    x = torch.randn(2, 3, 64, 64)
    first = backbone(x)
    with pytest.warns(UserWarning, match='an earlier call whose backward '
                      'has not run'):
        second = backbone(x)
    assert recorder.replayed == 1
    sum(o.sum() for o in first + second).backward()
    backbone(x)  # the backward has run: replayed again
    assert recorder.replayed == 2
    del first, second
    dropped = backbone(x)  # a call whose outputs are dropped unused
    del dropped
    backbone(x)
    assert recorder.replayed == 4


def test_training_graphs_train_eagerly_where_recording_fails():
    from mmtinyvim.engine import TrainingGraphs
    module = torch.nn.Conv2d(3, 4, 3).train()
    calls = []

    def failing(target, sample, dtype):
        calls.append(tuple(sample.shape))
        raise RuntimeError('operation not permitted when stream is '
                           'capturing')

    TrainingGraphs(module, record=failing).install()
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match='runs eagerly: recording its CUDA '
                      'graphs failed .RuntimeError: operation not permitted'):
        out = module(x)
    module(x)  # not recorded again
    assert calls == [(2, 3, 8, 8)]
    assert out.shape == (2, 4, 6, 6) and out.grad_fn is not None


def test_graph_options_are_checked():
    from mmtinyvim.engine import CUDAGraphTrainingHook
    for kwargs, match in ((dict(max_graphs=0), 'max_graphs must be an int'),
                          (dict(batch_shapes=[(800, )]), 'batch_shapes '
                           'must be \\(height, width\\) pairs'),
                          (dict(batch_shapes=[(800, -1)]), 'positive ints'),
                          (dict(max_padding=0.5), 'max_padding must be a '
                           'number >= 1')):
        with pytest.raises(ValueError, match=match):
            CUDAGraphTrainingHook(**kwargs)
    from mmtinyvim.engine import TrainingGraphs
    with pytest.raises(ValueError, match='batch_shapes needs a backbone '
                       'with out_strides'):
        TrainingGraphs(torch.nn.Conv2d(3, 4, 3), batch_shapes=[(8, 8)])


def test_training_graphs_record_the_compiled_module():
    from mmtinyvim.engine import TrainingGraphs
    module = torch.nn.Conv2d(3, 4, 3).train()
    seen = []

    def record(target, sample, dtype):
        seen.append(target)
        return target._orig_mod.forward  # no compilation on the CPU

    TrainingGraphs(module, compile=True, record=record).install()
    module(torch.randn(2, 3, 8, 8))
    assert isinstance(seen[0], torch._dynamo.eval_frame.OptimizedModule)
    assert seen[0]._orig_mod is module


def test_cuda_graph_hook_refuses_what_it_cannot_run():
    from types import SimpleNamespace

    from mmtinyvim.engine import CUDAGraphTrainingHook
    hook = CUDAGraphTrainingHook()
    classifier = build_classifier('tinyvim-s')[0]
    with pytest.raises(RuntimeError, match='the backbone is on cpu, it needs '
                       'a CUDA GPU'):
        hook.before_train(SimpleNamespace(model=classifier))
    # a wrapped (distributed) model is unwrapped, then checked the same way
    with pytest.raises(RuntimeError, match='the backbone is on cpu, it needs '
                       'a CUDA GPU'):
        hook.before_train(
            SimpleNamespace(model=torch.nn.DataParallel(classifier)))
    with pytest.raises(RuntimeError, match='graphs model.backbone; Linear '
                       'has none'):
        hook.before_train(SimpleNamespace(model=torch.nn.Linear(2, 2)))


def test_cuda_graph_hook_as_a_config_default_leaves_cpu_training_alone():
    """required=False (the ImageNet configs' default): where it cannot
    run, training is left as it is and the log says why."""
    from types import SimpleNamespace

    from mmtinyvim.engine import CUDAGraphTrainingHook
    classifier = build_classifier('tinyvim-s')[0]
    messages = []
    runner = SimpleNamespace(model=classifier, logger=SimpleNamespace(
        info=messages.append))
    forward = classifier.backbone.forward
    CUDAGraphTrainingHook(required=False).before_train(runner)
    assert messages == [
        'CUDAGraphTrainingHook records CUDA graphs: the backbone is on cpu, '
        'it needs a CUDA GPU. On other devices leave out --cuda-graph / the '
        'hook. Training runs without CUDA graphs.']
    assert classifier.backbone.forward == forward
    assert classifier.backbone.patch_embed[0].c.weight.is_contiguous()
    # a model without a backbone: said, not raised
    messages.clear()
    wrapped = SimpleNamespace(model=SimpleNamespace(), logger=runner.logger)
    CUDAGraphTrainingHook(required=False).before_train(wrapped)
    assert 'has none' in messages[0]


def test_benchmark_configuration_names_are_checked():
    tool = load_file('tools/analysis_tools/benchmark.py', 'benchmark_tool')
    assert tool.parse_config('engine+hook')['paths'] == {'engine', 'hook'}
    assert tool.parse_config('deploy+cl+graph')['paths'] == {
        'deploy', 'cl', 'graph'}
    with pytest.raises(ValueError, match='"hook" needs "engine"'):
        tool.parse_config('cl+hook')
    with pytest.raises(ValueError, match='"engine" combines only with '
                       '"hook"'):
        tool.parse_config('engine+graph')
    with pytest.raises(ValueError, match='"engine\\+compile" needs "hook"'):
        tool.parse_config('engine+compile')
    with pytest.raises(ValueError, match="Unknown configuration token 'fast'"):
        tool.parse_config('cl+fast')


def _train_steps(classifier, batches):
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(classifier.parameters(), lr=0.01, momentum=0.9))
    return [float(classifier.train_step(data, optim_wrapper)['loss'])
            for data in batches]


@needs_cuda
@pytest.mark.parametrize('variant, compile', [('tinyvim-s', False),
                                              ('mobilemamba-t2', False),
                                              ('mobilemamba-t2', True)])
def test_cuda_graph_hook_trains_like_eager(variant, compile):
    """Two mmengine train steps (SGD, fp32, TF32 off) with
    CUDAGraphTrainingHook against the eager channels-last network (what the
    hook changes besides the graphs), and, for information, against the
    eager contiguous network. Two, not more: at batch 4 and 96 px the
    third step's loss of MobileMamba-T2 is ill-conditioned (BatchNorm over
    2x2 maps): it varies from run to run already for the eager contiguous
    network alone (docs/benchmark.md)."""
    from types import SimpleNamespace

    from mmpretrain.structures import DataSample

    from mmtinyvim.engine import CUDAGraphTrainingHook
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    eager = build_classifier(variant, drop_path_rate=0.0)[0].cuda().train()
    eager_cl = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    graphed = copy.deepcopy(eager)
    CUDAGraphTrainingHook(compile=compile).before_train(
        SimpleNamespace(model=graphed))
    g = torch.Generator().manual_seed(0)
    batches = [dict(inputs=torch.randint(0, 256, (4, 3, 96, 96),
                                         generator=g, dtype=torch.uint8),
                    data_samples=[DataSample().set_gt_label(i)
                                  for i in range(4)]) for _ in range(2)]
    reference = _train_steps(eager_cl, batches)
    losses = _train_steps(graphed, batches)
    contiguous = _train_steps(eager, batches)
    # the trained networks (weights and running statistics) on new images
    x = torch.randn(8, 3, 96, 96, device='cuda')
    with torch.no_grad():
        logits = [model.eval()(x, mode='tensor')
                  for model in (graphed, eager_cl, eager)]
    error, layout = _relative(logits[0], logits[1]), _relative(
        logits[1], logits[2])
    print(f'{variant}: CUDAGraphTrainingHook(compile={compile}) losses '
          f'{losses}; eager '
          f'channels-last {reference}; eager contiguous {contiguous}; '
          f'after 2 steps, eval logits vs eager channels-last max|d|/std '
          f'{error:.2e} (eager channels-last vs contiguous {layout:.2e})')
    assert losses == pytest.approx(reference, rel=1e-5)
    assert error < 1e-3


@pytest.fixture
def gloo_group(tmp_path):
    """A one-process gloo group, as ``tools/dist_train.sh`` makes on CPU."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg',
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_training_graphs_under_ddp_reduces_like_eager_ddp(gloo_group):
    """CPU twin of the distributed fast path (gloo, one process): the model
    wrapped by ``GraphSafeDistributedDataParallel`` (channels-last before
    DDP is built) with the dispatcher on ``ddp.module.backbone`` (what the
    hook does under ``tools/dist_train.sh``) sends every gradient through
    DDP's reduction and trains like eager DDP; the CUDA run on two GPUs is
    is in docs/benchmark.md."""
    from mmengine.model import MMDistributedDataParallel

    from mmtinyvim.engine import (TrainingGraphs,
                                  GraphSafeDistributedDataParallel)
    torch.manual_seed(0)
    classifier = build_classifier('mobilemamba-t2')[0]
    eager = copy.deepcopy(classifier).to(memory_format=torch.channels_last)
    models = [MMDistributedDataParallel(module=eager,
                                        broadcast_buffers=False),
              GraphSafeDistributedDataParallel(module=classifier,
                                               broadcast_buffers=False)]
    recorder = _CountingRecorder()
    TrainingGraphs(models[1].module.backbone, record=recorder).install()
    reduced = [[0], [0]]  # buckets that DDP's reducer hands on
    for ddp, count in zip(models, reduced):
        ddp.register_comm_hook(count, _counting_allreduce)
    losses, grads = _train_ddp(models, steps=3)
    error = (grads[0] - grads[1]).abs().max() / grads[0].std()
    print(f'DDP with the dispatcher vs eager DDP: losses {losses}, '
          f'gradients max|d|/std {error:.2e}')
    assert recorder.recorded and recorder.replayed == 3
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert error < 1e-4
    assert reduced[0] == reduced[1] and reduced[0][0] > 0


def test_converting_after_ddp_wraps_is_refused(gloo_group):
    """Why the wrapper converts first: a model converted to channels-last
    after DDP wrapped it trains on wrong gradients (this test shows it), so
    the hook refuses such a model."""
    from types import SimpleNamespace

    from mmengine.model import MMDistributedDataParallel

    from mmtinyvim.engine import (CUDAGraphTrainingHook,
                                  GraphSafeDistributedDataParallel)
    torch.manual_seed(0)
    classifier = build_classifier('mobilemamba-t2')[0]
    before = MMDistributedDataParallel(
        module=copy.deepcopy(classifier).to(
            memory_format=torch.channels_last), broadcast_buffers=False)
    after = MMDistributedDataParallel(module=copy.deepcopy(classifier),
                                      broadcast_buffers=False)
    after.module.to(memory_format=torch.channels_last)
    losses, _ = _train_ddp([before, after], steps=3)
    print(f'converted before / after DDP wrapped it: losses {losses}')
    assert losses[0][-1] != pytest.approx(losses[1][-1], rel=1e-3)
    hook = CUDAGraphTrainingHook()
    unconverted = GraphSafeDistributedDataParallel(
        module=copy.deepcopy(classifier), channels_last=False,
        broadcast_buffers=False)
    with pytest.raises(RuntimeError, match='must be channels-last '
                       'before DDP wraps it'):
        hook.before_train(SimpleNamespace(model=unconverted))
    for model in (before, after):  # mmengine's own wrapper
        with pytest.raises(RuntimeError, match="needs model_wrapper_cfg="
                           r"dict\(type='GraphSafeDistributedData"):
            hook.before_train(SimpleNamespace(model=model))


def _train_ddp(models, steps):
    """``steps`` SGD steps of each model on the same batches; the losses and
    the last step's gradients (flattened) of each."""
    optims = [torch.optim.SGD(m.parameters(), lr=0.1) for m in models]
    torch.manual_seed(1)
    batches = [(torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2, )))
               for _ in range(steps)]
    losses = [[] for _ in models]
    for images, labels in batches:
        for i, (ddp, optim) in enumerate(zip(models, optims)):
            optim.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                ddp(images, mode='tensor'), labels)
            loss.backward()
            if len(losses[i]) < steps - 1:
                optim.step()
            losses[i].append(loss.item())
    grads = [torch.cat([p.grad.flatten() for p in m.parameters()
                        if p.grad is not None]) for m in models]
    return losses, grads


def _counting_allreduce(count, bucket):
    count[0] += 1
    fut = torch.futures.Future()
    fut.set_result(bucket.buffer())
    return fut
