"""DistillationImageClassifier: the two recipes' losses against a hand
computation, a frozen teacher that sees the student's augmented batch, strict
teacher loading, and the KD configs building through mmpretrain's registry.

Student and teacher are tiny ResNets with random weights (no timm needed)."""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

import mmtinyvim  # noqa: F401  (registration)
from mmtinyvim.models.distillation import DistillationImageClassifier

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 5
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def tiny_classifier(head, num_classes=NUM_CLASSES):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(head, num_classes=num_classes, in_channels=64))


def tiny_teacher(num_classes=NUM_CLASSES):
    return tiny_classifier(dict(type='LinearClsHead'), num_classes)


def build(cfg):
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def distiller(distill, teacher_checkpoint=None, **extra):
    hard = distill['type'] == 'hard'
    head = dict(type='TinyViMClsHead' if hard else 'MobileMambaClsHead',
                distillation=hard,
                loss=dict(type='CrossEntropyLoss', loss_weight=1.0))
    cfg = tiny_classifier(head)
    cfg.update(type='DistillationImageClassifier', teacher=tiny_teacher(),
               distill=distill, teacher_checkpoint=teacher_checkpoint,
               data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True,
                                      num_classes=NUM_CLASSES), **extra)
    return build(cfg)


def batch(n=4, side=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, side, side, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (n, ), generator=gen)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, labels, samples


def cross_entropy_by_hand(logits, targets):
    return -logits.log_softmax(1)[torch.arange(len(targets)), targets].mean()


def test_hard_distillation_loss_by_hand():
    torch.manual_seed(0)
    model = distiller(dict(type='hard', alpha=0.3)).train()
    inputs, labels, samples = batch()
    losses = model.loss(inputs, samples)
    with torch.no_grad():
        cls, dist = model.head.forward_heads(model.extract_feat(inputs))
        teacher = model.teacher(inputs, mode='tensor')  # same input as is
    assert sorted(losses) == ['loss_cls', 'loss_distill']
    torch.testing.assert_close(losses['loss_cls'],
                               0.7 * cross_entropy_by_hand(cls, labels))
    torch.testing.assert_close(
        losses['loss_distill'],
        0.3 * cross_entropy_by_hand(dist, teacher.argmax(1)))
    # the distillation head really is trained on the teacher, not the labels
    assert not torch.equal(teacher.argmax(1), labels)


def test_soft_distillation_loss_by_hand():
    torch.manual_seed(0)
    model = distiller(dict(type='soft', weight=5.0, tau=2.0,
                           teacher_input_size=24,
                           teacher_mean=[0., 0., 0.],
                           teacher_std=[255., 255., 255.])).train()
    inputs, labels, samples = batch(side=32)
    seen = []
    model.teacher.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(args[0]), with_kwargs=True)
    losses = model.loss(inputs, samples)

    # the teacher's input: back to 0-255 RGB pixels, then [0, 1], bicubic 24
    pixels = inputs * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(
        MEAN).view(1, 3, 1, 1)
    expected_input = F.interpolate(pixels / 255, size=(24, 24),
                                   mode='bicubic', align_corners=False)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected_input)
    with torch.no_grad():
        (student, ) = model.head.forward_heads(model.extract_feat(inputs))
        teacher = model.teacher(expected_input, mode='tensor')
    p_t = (teacher / 2).softmax(1)
    kl = (p_t * (p_t.log() - (student / 2).log_softmax(1))).sum() / 4
    torch.testing.assert_close(losses['loss_cls'],
                               cross_entropy_by_hand(student, labels))
    torch.testing.assert_close(losses['loss_distill'], 5.0 * 2.0**2 * kl)


def test_teacher_sees_the_mixed_batch_and_stays_frozen():
    torch.manual_seed(0)
    model = distiller(
        dict(type='hard', alpha=0.5),
        train_cfg=dict(augments=[dict(type='Mixup', alpha=1.0)]))
    model.train()
    teacher = model.teacher
    assert not teacher.training
    assert all(not m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    student_ids = {id(p) for p in model.parameters()}
    assert not student_ids & {id(p) for p in teacher.parameters()}
    assert not any(k.startswith('teacher') or '_frozen' in k
                   for k in model.state_dict())

    images = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
              for _ in range(4)]
    data = dict(inputs=images,
                data_samples=[DataSample().set_gt_label(i) for i in range(4)])
    plain = model.data_preprocessor(copy.deepcopy(data), False)['inputs']
    mixed = model.data_preprocessor(data, True)
    assert 'gt_score' in mixed['data_samples'][0]
    seen = {}

    def record(name):
        def hook(module, args, kwargs):
            seen[name] = args[0]
        return hook

    model.backbone.register_forward_pre_hook(record('student'),
                                             with_kwargs=True)
    teacher.register_forward_pre_hook(record('teacher'), with_kwargs=True)
    losses = model(**mixed, mode='loss')
    assert torch.equal(seen['teacher'], seen['student'])
    assert torch.equal(seen['student'], mixed['inputs'])
    assert not torch.allclose(seen['student'], plain)  # mixup did mix

    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.head.dist_head.weight.grad.abs().sum() > 0
    assert not teacher.training  # train() again keeps the teacher in eval
    model.train()
    assert not teacher.training

    # the EMA copy shares the teacher; the teacher moves with the student
    assert copy.deepcopy(model).teacher is teacher
    model.to(torch.float64)
    assert next(teacher.parameters()).dtype == torch.float64


def test_teacher_weights_loaded_strictly_when_training_starts(tmp_path):
    trained = build(tiny_teacher())
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': trained.state_dict()}, path)
    model = distiller(dict(type='hard'), teacher_checkpoint=str(path))
    model.init_weights()
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[name], value)
    assert not model.teacher.training

    with pytest.raises(ValueError, match='set teacher_checkpoint'):
        distiller(dict(type='hard')).init_weights()
    with pytest.raises(FileNotFoundError, match='teacher_checkpoint'):
        distiller(dict(type='hard'),
                  teacher_checkpoint=str(tmp_path / 'none.pth')).init_weights()
    wrong = tmp_path / 'wrong.pth'
    torch.save(build(tiny_teacher(num_classes=7)).state_dict(), wrong)
    with pytest.raises(RuntimeError, match='shape mismatch'):
        distiller(dict(type='hard'),
                  teacher_checkpoint=str(wrong)).init_weights()


def test_teacher_with_other_classes_is_refused():
    cfg_model = distiller(dict(type='soft'))
    cfg_model._frozen_teacher.module = build(tiny_teacher(num_classes=7))
    inputs, _, samples = batch()
    with pytest.raises(ValueError, match='same classes'):
        cfg_model.loss(inputs, samples)


@pytest.mark.parametrize('distill, match', [
    (dict(type='medium'), "type 'hard'"),
    (dict(type='hard', tau=1.0), 'tau has no effect'),
    (dict(type='hard', alpha=1.5), r'alpha must be in \[0, 1\]'),
    (dict(type='soft', weight=0), 'weight must be a positive'),
    (dict(type='soft', teacher_mean=[0, 0, 0]), 'go together'),
    (dict(type='soft', teacher_input_size=0), 'positive int'),
])
def test_bad_distill_settings(distill, match):
    with pytest.raises(ValueError, match=match):
        distiller(distill)


def test_head_must_fit_the_distillation_type():
    cfg = tiny_classifier(dict(type='TinyViMClsHead', distillation=False))
    cfg.update(type='DistillationImageClassifier', teacher=tiny_teacher(),
               distill=dict(type='hard'))
    with pytest.raises(ValueError, match='distillation=True'):
        build(cfg)


@pytest.mark.parametrize('name, distill', [
    ('tinyvim_s_in1k', dict(type='hard', alpha=0.5)),
    ('tinyvim_l_1000e_in1k', dict(type='hard', alpha=0.5)),
    ('mobilemamba_t2_kd1000e_in1k',
     dict(type='soft', weight=5.0, tau=1.0, teacher_input_size=224,
          teacher_mean=[0., 0., 0.], teacher_std=[255., 255., 255.])),
])
def test_kd_configs_build_through_mmpretrain(name, distill):
    cfg = Config.fromfile(str(REPO / 'configs' / f'{name}.py'))
    assert cfg.model.type == 'DistillationImageClassifier'
    assert cfg.model.distill == distill
    assert cfg.model.teacher_checkpoint == cfg.teacher_checkpoint
    assert cfg.model.teacher.type == 'TimmClassifier'
    cfg.model.data_preprocessor = cfg.data_preprocessor
    inputs = torch.randn(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(i) for i in range(2)]

    # the teacher is built for training only: testing the student needs
    # neither timm nor the teacher's memory
    model = build(copy.deepcopy(cfg.model))
    model.eval().predict(inputs)
    assert not model._teacher_built

    cfg.model.teacher = tiny_teacher(num_classes=1000)  # timm-free stand-in
    model = build(cfg.model)
    assert isinstance(model, DistillationImageClassifier)
    losses = model.train().loss(inputs, samples)
    assert model._teacher_built
    assert set(losses) == {'loss_cls', 'loss_distill'}
    assert all(torch.isfinite(v) for v in losses.values())
