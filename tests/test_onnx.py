"""ONNX export through the pure-PyTorch scan, checked with onnxruntime."""
import os

import cv2
import mmcv
import onnx
import pytest
import torch
from mmseg.structures import SegDataSample

from mmtinyvim.models.backbones import mobilemamba
from mmtinyvim.models.zoo import build_classifier
from mmtinyvim.ops import selective_scan

from tests.modules import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4  # max |ONNX - PyTorch| / std(PyTorch), float32 throughout


p2o = load_file('tools/deployment/pytorch2onnx.py')


def _only_standard_ops(path):
    graph = onnx.load(path).graph
    onnx.checker.check_model(onnx.load(path))
    return {node.domain for node in graph.node} <= {'', 'ai.onnx'}


class _Scan(torch.nn.Module):

    def __init__(self, channels, d_state):
        super().__init__()
        self.A = torch.nn.Parameter(-torch.rand(channels, d_state) * 2)
        self.D = torch.nn.Parameter(torch.rand(channels))
        self.delta_bias = torch.nn.Parameter(torch.randn(channels) * 0.1)

    def forward(self, u, delta, B, C):
        return selective_scan(u, delta, self.A, B, C, self.D, self.delta_bias,
                              backend='torch')


@pytest.mark.parametrize('length', [24, 32, 49, 144])
def test_torch_scan_exports_any_length(length, tmp_path):
    """The parallel prefix scan of the 'torch' backend exports for lengths
    below, at and between powers of two (its step count follows the traced
    length)."""
    import onnxruntime
    torch.manual_seed(length)
    batch, directions, channels, d_state = 2, 4, 6, 8
    scan = _Scan(directions * channels, d_state)
    inputs = (torch.randn(batch, directions * channels, length),
              torch.randn(batch, directions * channels, length),
              torch.randn(batch, directions, d_state, length),
              torch.randn(batch, directions, d_state, length))
    names = ['u', 'delta', 'B', 'C']
    path = str(tmp_path / 'scan.onnx')
    with torch.no_grad():
        torch.onnx.export(scan, inputs, path, dynamo=False, opset_version=17,
                          input_names=names)
        expected = scan(*inputs)
    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    result, = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    error = ((torch.from_numpy(result) - expected).abs().max() /
             expected.std()).item()
    print(f'scan L={length}: ONNX vs PyTorch max|d|/std = {error:.2e}')
    assert error < TOLERANCE


# 64 x 80: TinyViM pads to 64 x 96 and crops its outputs back
@pytest.mark.parametrize('variant,shape', [('tinyvim-s', (64, 80)),
                                           ('mobilemamba-t2', (64, 96))])
def test_backbone_export_matches_pytorch(variant, shape, tmp_path):
    torch.manual_seed(0)
    model, names = p2o.build_backbone(variant)
    path = p2o.export(model, names, str(tmp_path / 'backbone.onnx'), shape)
    assert _only_standard_ops(path)
    # batch 2 on a graph traced with batch 1: the batch axis is dynamic
    errors = p2o.compare_with_onnxruntime(model, path, shape, batch=2)
    print(f'\n{variant} backbone ONNX vs PyTorch, max|d|/std: {errors}')
    assert list(errors) == names == [f'out{i}' for i in model.out_indices]
    assert max(errors.values()) < TOLERANCE


def test_classifier_cli_loads_official_weights_and_verifies(tmp_path, capsys):
    torch.manual_seed(0)
    source, _ = build_classifier('mobilemamba-t2')
    for module in source.modules():  # non-trivial BN statistics to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    official = mobilemamba.to_official_classifier(source.state_dict())
    checkpoint = tmp_path / 'official.pth'
    torch.save({'model': official}, checkpoint)
    out = str(tmp_path / 'cls.onnx')

    p2o.main(['MobileMamba-T2', '--classifier', '--checkpoint',
              str(checkpoint), '--deploy', '--shape', '64', '64', '--out',
              out, '--verify'])
    printed = capsys.readouterr().out
    assert 'logits: max|ONNX - PyTorch| / std' in printed
    assert _only_standard_ops(out)

    import onnxruntime
    images = torch.randn(3, 3, 64, 64)
    session = onnxruntime.InferenceSession(
        out, providers=['CPUExecutionProvider'])
    logits, = session.run(None, {'input': images.numpy()})
    with torch.no_grad():
        expected = source.eval()(images, mode='tensor')
    error = ((torch.from_numpy(logits) - expected).abs().max() /
             expected.std()).item()
    print(f'deployed classifier from official weights vs source: {error:.2e}')
    assert logits.shape == (3, 1000)
    assert error < TOLERANCE


def test_bad_inputs_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        p2o.main(['tinyvim-x'])
    assert "invalid choice: 'tinyvim-x'" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        p2o.main(['tinyvim-s', '--classifier', '--out-indices', '1'])
    assert '--out-indices applies to backbones' in capsys.readouterr().err

    with pytest.raises(FileNotFoundError, match='no such file'):
        p2o.main(['tinyvim-s', '--checkpoint', str(tmp_path / 'none.pth')])

    model, names = p2o.build_backbone('mobilemamba-t2')
    with pytest.raises(ValueError, match='at least 32 x 32'):
        p2o.export(model, names, str(tmp_path / 'x.onnx'), (16, 64))

    # a TinyViM checkpoint for a MobileMamba export: refused, names the keys
    wrong = tmp_path / 'tinyvim.pth'
    torch.save(build_classifier('tinyvim-s')[0].state_dict(), wrong)
    with pytest.raises(RuntimeError, match='does not fit .*Nothing was '
                       'loaded'):
        p2o.build_classifier_for_export('mobilemamba-t2', str(wrong))


@pytest.mark.parametrize('how', ['same', 'symlink'])
def test_out_naming_the_checkpoint_is_refused(tmp_path, how):
    checkpoint = tmp_path / 'weights.pth'
    torch.save(build_classifier('mobilemamba-t2')[0].state_dict(), checkpoint)
    before = checkpoint.read_bytes()
    out = checkpoint
    if how == 'symlink':
        out = tmp_path / 'model.onnx'
        out.symlink_to(checkpoint)
    with pytest.raises(ValueError, match='would destroy the --checkpoint'):
        p2o.main(['mobilemamba-t2', '--classifier', '--checkpoint',
                  str(checkpoint), '--shape', '64', '64', '--out', str(out)])
    assert checkpoint.read_bytes() == before


def test_failed_export_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / 'old.onnx'
    out.write_bytes(b'previous export')
    model, names = p2o.build_backbone('mobilemamba-t2')

    def broken(model, args, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half')
        raise RuntimeError('exporter failed')
    monkeypatch.setattr(p2o.torch.onnx, 'export', broken)
    with pytest.raises(RuntimeError, match='exporter failed'):
        p2o.export(model, names, str(out), (64, 64))
    assert out.read_bytes() == b'previous export'
    assert os.listdir(tmp_path) == ['old.onnx']


# ----------------------------------------- detectors and segmentors --

RETINANET = os.path.join(ROOT, 'configs', 'retinanet_tinyvim_s_coco.py')
SEM_FPN = os.path.join(ROOT, 'configs', 'fpn_mobilemamba_t2_ade20k.py')
SHAPE = (128, 128)  # small: each export stays within seconds on a CPU


def _preprocessed(model, image):
    """The input the model's own data preprocessor makes of ``image``
    resized to SHAPE (channel order and normalisation as in training)."""
    resized = cv2.resize(mmcv.imread(image), SHAPE[::-1])
    batch = dict(inputs=[torch.from_numpy(resized).permute(2, 0, 1)])
    return model.data_preprocessor(batch, False)['inputs']


@pytest.fixture(scope='module')
def demo_image(tmp_path_factory):
    """A real (demo data set) image: shapes painted on a textured
    background, as the COCO demo data writes them."""
    from mmtinyvim.datasets.make_demo_data import make_demo_data
    root = make_demo_data('coco', tmp_path_factory.mktemp('demo'),
                          num_train=1, num_val=1)
    images = sorted((root / 'val2017').glob('*.jpg'))
    assert images
    return str(images[0])


def test_detector_export_matches_pytorch_on_an_image(tmp_path, demo_image,
                                                     capsys):
    """RetinaNet with TinyViM-S, random weights saved as mmengine saves
    them: the head's raw outputs per level match PyTorch's on a real image,
    and the head's own decoding runs on the ONNX maps."""
    import onnxruntime
    torch.manual_seed(0)
    model, names, task = p2o.build_from_config(RETINANET)
    assert task == 'det'
    checkpoint = tmp_path / 'retinanet.pth'
    torch.save({'meta': {}, 'state_dict': model.detector.state_dict()},
               checkpoint)
    out = str(tmp_path / 'retinanet.onnx')
    p2o.main([RETINANET, '--checkpoint', str(checkpoint), '--shape',
              *map(str, SHAPE), '--out', out, '--verify', '--image',
              demo_image, '--tolerance', str(TOLERANCE)])
    printed = capsys.readouterr().out
    print(printed)
    levels = len(model.detector.bbox_head.prior_generator.strides)
    assert names == ([f'cls_score{i}' for i in range(levels)] +
                     [f'bbox_pred{i}' for i in range(levels)])
    for name in names:
        assert f'{name}: max|ONNX - PyTorch| / std = ' in printed
    assert _only_standard_ops(out)

    # --verify has compared every output (it exits beyond --tolerance)
    exported = model  # the checkpoint's weights
    images = p2o.image_batch(exported, demo_image, SHAPE)
    assert torch.allclose(images, _preprocessed(model, demo_image))
    session = onnxruntime.InferenceSession(
        out, providers=['CPUExecutionProvider'])
    maps = session.run(None, {'input': images.numpy()})
    head = model.detector.bbox_head
    assert maps[0].shape == (1, head.num_base_priors * head.cls_out_channels,
                             SHAPE[0] // 8, SHAPE[1] // 8)
    detections = p2o.decode_detections(exported, maps, SHAPE, score_thr=0.0)
    with torch.no_grad():
        reference = p2o.decode_detections(exported, exported(images), SHAPE,
                                          score_thr=0.0)
    boxes, expected = detections[0].bboxes, reference[0].bboxes
    assert boxes.shape[1] == 4 and len(boxes) > 0
    top = min(len(boxes), len(expected), 10)
    assert torch.allclose(detections[0].scores[:top],
                          reference[0].scores[:top], atol=1e-5)


def test_segmentor_export_gives_logits_at_input_size(tmp_path, demo_image):
    """Semantic FPN with MobileMamba-T2: logits resized to the input as
    mmseg's inference does, matching PyTorch on a real image."""
    torch.manual_seed(0)
    model, names, task = p2o.build_from_config(SEM_FPN)
    assert (task, names) == ('seg', ['seg_logits'])
    path = p2o.export(model, names, str(tmp_path / 'fpn.onnx'), SHAPE)
    assert _only_standard_ops(path)
    images = p2o.image_batch(model, demo_image, SHAPE)
    # mmseg's own preprocessing (no padding at test time without a
    # test_cfg size)
    assert torch.allclose(images, _preprocessed(model, demo_image))
    errors = p2o.compare_with_onnxruntime(model, path, SHAPE, images=images)
    print(f'\nSemantic FPN MobileMamba-T2 ONNX vs PyTorch: {errors}')
    assert max(errors.values()) < TOLERANCE
    with torch.no_grad():
        logits = model(images)
        # the same logits as mmseg's own inference path
        reference = model.segmentor.predict(images, [
            SegDataSample(metainfo=dict(img_shape=SHAPE, ori_shape=SHAPE))])
    assert logits.shape == (1, model.segmentor.decode_head.num_classes,
                            *SHAPE)
    assert torch.allclose(logits[0], reference[0].seg_logits.data,
                          atol=1e-5)


def test_config_exports_refuse_what_they_cannot_export(tmp_path, capsys):
    maskrcnn = os.path.join(ROOT, 'configs', 'maskrcnn_tinyvim_s_coco.py')
    with pytest.raises(ValueError, match='MaskRCNN is a two-stage detector: '
                       'its RoI heads crop features per proposal'):
        p2o.build_from_config(maskrcnn)
    classifier = os.path.join(ROOT, 'configs', 'tinyvim_s_in1k.py')
    with pytest.raises(ValueError, match='is a classification config: '
                       'export its classifier with pytorch2onnx.py VARIANT '
                       '--classifier'):
        p2o.build_from_config(classifier)
    with pytest.raises(ValueError, match=r"--task seg: .* is a det config "
                       r"\(default_scope 'mmdet'\)"):
        p2o.build_from_config(RETINANET, task='seg')
    with pytest.raises(SystemExit):
        p2o.main([RETINANET, '--classifier'])
    assert ('--classifier applies to a variant, not to a config'
            in capsys.readouterr().err)
    with pytest.raises(SystemExit):
        p2o.main(['tinyvim-s', '--task', 'det'])
    assert '--task applies to a config file' in capsys.readouterr().err
    # the output named as the config is refused before anything is built
    with pytest.raises(ValueError, match='would destroy the config'):
        p2o.main([RETINANET, '--out', RETINANET])
