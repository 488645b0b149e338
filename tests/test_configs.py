"""Every config in configs/: built from the file itself, trained for two
iterations and evaluated once with its real metric (CocoMetric, IoUMetric,
Accuracy) on the generated demo data, on CPU at small image sizes.

Only what makes the run small is overridden: data roots, image sizes, batch
size 2 with 4 training images (2 iterations), no pretrained weights, no
checkpoints, the float32 optimizer wrapper instead of AMP (CPU), fewer RoIs per image in
two-stage detectors, score thresholds of 0 so that an untrained detector
still yields boxes for CocoMetric to score, and a tiny mmpretrain ResNet as
the distillation teacher (the configs' timm teachers are large and need timm).
Model, optimizer, schedulers, hooks, pipelines and loops stay as written.
"""
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmtinyvim.datasets.make_demo_data import make_demo_data
from mmtinyvim.engine.optim_wrappers import (float32_optim_wrapper_type,
                                             is_amp_optim_wrapper)
from mmtinyvim.models.zoo import (FAMILIES, VARIANTS, classifier_cfg,
                                  paper_resolution, parse_variant)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / 'configs').glob('*.py'))
# image side of the smoke runs per task (TinyViM needs multiples of 32);
# detection keeps 64: the configs drop training images under 32 px
SIDE = {'coco': 64, 'ade': 32, 'imagenet': 32}
METRIC_KEYS = {
    'mmdet': ('coco/bbox_mAP', ),
    'mmseg': ('mIoU', 'aAcc'),
    'mmpretrain': ('accuracy/top1', ),
}
TASK_OF_SCOPE = {'mmdet': 'coco', 'mmseg': 'ade', 'mmpretrain': 'imagenet'}
RESIZE_TYPES = ('Resize', 'RandomResize', 'RandomResizedCrop', 'ResizeEdge')


# stands in for the timm teachers of the distillation configs
TINY_TEACHER = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                  out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=64))


@pytest.fixture(scope='module')
def teacher_checkpoint(tmp_path_factory):
    """Weights of TINY_TEACHER, loaded (strictly) when training starts."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        teacher = MODELS.build(TINY_TEACHER)
    path = tmp_path_factory.mktemp('teacher') / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def demo_roots(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo_data')
    return {task: make_demo_data(task, out, num_train=4, num_val=2,
                                 image_side=SIDE[task], seed=0)
            for task in TASK_OF_SCOPE.values()}


class RecordMetrics(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.metrics = None
        self.train_iters = 0
        self.loss_names = set()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.train_iters += 1
        self.loss_names |= set(outputs)

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics


def _walk(node):
    """Every dict inside a config node, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _walk(value)


def _shrink_pipelines(cfg, side):
    for step in _walk([cfg.train_dataloader, cfg.val_dataloader,
                       cfg.test_dataloader]):
        kind = step.get('type')
        if kind in ('Resize', 'RandomResize') and 'scale' in step:
            step['scale'] = (side * 2, side) if step.get('keep_ratio') \
                else (side, side)
        elif kind == 'RandomResizedCrop':
            step['scale'] = side
        elif kind == 'ResizeEdge':
            step['scale'] = side + side // 8
        elif kind == 'CenterCrop':
            step['crop_size'] = side
        elif kind == 'RandomCrop' and 'crop_size' in step:
            step['crop_size'] = (side, side)


def _datasets(cfg):
    """The innermost dataset dicts of the three dataloaders."""
    found = []
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        dataset = loader.dataset
        while 'dataset' in dataset:  # RepeatDataset and friends
            dataset.times = 1
            dataset = dataset.dataset
        found.append(dataset)
    return found


def shrink(cfg, roots, work_dir, teacher_checkpoint=None):
    """The overrides that make ``cfg`` a two-iteration CPU run."""
    scope = cfg.default_scope
    root = roots[TASK_OF_SCOPE[scope]]
    side = SIDE[TASK_OF_SCOPE[scope]]
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    cfg.visualizer.name = f'visualizer_{work_dir.name}'
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.model.backbone.init_cfg = None
    if cfg.model.type == 'DistillationImageClassifier':
        cfg.model.teacher = TINY_TEACHER
        cfg.model.teacher_checkpoint = teacher_checkpoint
    if is_amp_optim_wrapper(cfg.optim_wrapper.type):
        cfg.optim_wrapper.type = float32_optim_wrapper_type(
            cfg.optim_wrapper.type)
        cfg.optim_wrapper.pop('loss_scale', None)

    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.pin_memory = False
    cfg.train_dataloader.batch_size = 2
    # the 2 validation images at once; mmseg's test-time preprocessor needs
    # equal sizes in a batch, which keep-ratio resizing does not give
    cfg.val_dataloader.batch_size = 1 if scope == 'mmseg' else 2
    cfg.train_dataloader.batch_sampler = None  # exactly 4 / 2 = 2 iterations
    for dataset in _datasets(cfg):
        dataset.data_root = str(root)
    _shrink_pipelines(cfg, side)

    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.update(max_iters=2, val_interval=2)
    else:
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
        cfg.train_cfg.pop('dynamic_intervals', None)

    if scope == 'mmdet':
        cfg.val_evaluator.ann_file = str(
            root / 'annotations' / 'instances_val2017.json')
        cfg.test_evaluator = cfg.val_evaluator
        test_cfg = cfg.model.test_cfg
        (test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg).update(
            score_thr=0.0, max_per_img=10)
        if 'rcnn' in cfg.model.train_cfg:  # tens of RoIs, not thousands
            cfg.model.train_cfg.rpn_proposal.max_per_img = 32
            cfg.model.train_cfg.rcnn.sampler.num = 16
            test_cfg.rpn.max_per_img = 32
    elif scope == 'mmseg':
        cfg.model.data_preprocessor.size = (side, side)
    return cfg


@pytest.fixture(scope='module', autouse=True)
def one_intra_op_thread():
    """The smoke runs' tensors are tiny: intra-op threads only add
    synchronisation, and next to another busy process on a 2-core machine
    their spin-waits multiply the run time (a TinyViM-S training step at
    64 px: about 7 s with 2 threads, 0.4 s with 1). Same computations."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def plain_config_text(monkeypatch):
    """The runner formats the config with yapf three times (log, dump,
    visualizer), seconds per config on 2 cores; the smoke runs skip it."""
    monkeypatch.setattr(Config, 'pretty_text',
                        property(lambda cfg: repr(cfg.to_dict())))


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_config_trains_and_evaluates(config, demo_roots, teacher_checkpoint,
                                     tmp_path, plain_config_text):
    start, cpu_start = time.time(), time.process_time()
    cfg = shrink(Config.fromfile(str(config)), demo_roots, tmp_path,
                 teacher_checkpoint)
    runner = Runner.from_cfg(cfg)
    record = RecordMetrics()
    runner.register_hook(record)
    runner.train()
    assert record.train_iters == 2
    assert record.metrics is not None, 'no evaluation ran'
    for key in METRIC_KEYS[cfg.default_scope]:
        assert key in record.metrics, (key, record.metrics)
    if cfg.model.type == 'MaskRCNN':
        assert 'coco/segm_mAP' in record.metrics, record.metrics
    if cfg.model.type == 'DistillationImageClassifier':
        # both terms trained; the frozen teacher kept its loaded weights
        assert {'loss_cls', 'loss_distill'} <= record.loss_names
        loaded = torch.load(teacher_checkpoint)['state_dict']
        teacher = runner.model.teacher.state_dict()
        assert all(torch.equal(teacher[k], v) for k, v in loaded.items())
    print(f'{config.stem}: 2 iterations + evaluation in '
          f'{time.time() - start:.1f} s '
          f'({time.process_time() - cpu_start:.1f} s CPU)')


def test_every_task_and_variant_has_configs():
    names = {p.stem for p in CONFIGS}
    # the longer ImageNet recipe of each family (docs/recipes.md#imagenet)
    long_recipe = {'tinyvim': '1000e', 'mobilemamba': 'kd1000e'}
    assert set(long_recipe) == set(FAMILIES)
    expected = set()
    for name in VARIANTS:
        variant = name.replace('-', '_')
        expected |= {f'{det}_{variant}_coco' for det in
                     ('maskrcnn', 'retinanet', 'ssdlite320', 'ssdlite512')}
        expected |= {f'{seg}_{variant}_ade20k' for seg in
                     ('fpn', 'deeplabv3', 'pspnet')}
        expected.add(f'{variant}_in1k')
        family = parse_variant(name)[0]
        expected.add(f'{variant}_{long_recipe[family]}_in1k')
    assert expected <= names, sorted(expected - names)



def test_metafile_lists_every_config_with_its_published_result():
    """metafile.yml has one entry per config; a published number there is
    the one the config's header names, and an entry without results belongs
    to a config whose header says it was not published."""
    import yaml
    with open(REPO / 'metafile.yml') as f:
        models = yaml.safe_load(f)['Models']
    assert sorted(m['Name'] for m in models) == [p.stem for p in CONFIGS]
    for model in models:
        config = REPO / model['Config']
        header = config.read_text().split('_base_')[0]
        if model['Results'] == 'not published':
            assert 'Not published' in header, config.name
            continue
        for result in model['Results']:
            for value in result['Metrics'].values():
                assert f'{value:.1f}' in header, (config.name, value)


@pytest.mark.parametrize(
    'config', [p for p in CONFIGS if p.stem.endswith('_in1k')],
    ids=lambda p: p.stem)
def test_classification_config_matches_its_variant(config):
    """Each ImageNet config states its variant's architecture, head width and
    resolution (what the shared _base_ recipes leave to the variant files):
    checked against the backbone's own arch table."""
    family, arch = config.stem.split('_')[:2]
    variant = f'{family}-{arch}'
    cfg = Config.fromfile(str(config), import_custom_modules=False)
    expected = classifier_cfg(variant)
    assert cfg.model.backbone.type == expected['backbone']['type']
    assert cfg.model.backbone.arch == arch
    assert cfg.model.head.in_channels == expected['head']['in_channels']
    size = paper_resolution(variant)
    sizes = {step.type: step for step in cfg.train_pipeline
             + cfg.test_pipeline}
    assert sizes['RandomResizedCrop'].scale == size
    assert sizes['CenterCrop'].crop_size == size
    assert sizes['ResizeEdge'].scale == int(size / 0.875)  # crop ratio 0.875
    for loader, pipeline in (('train_dataloader', cfg.train_pipeline),
                             ('val_dataloader', cfg.test_pipeline),
                             ('test_dataloader', cfg.test_pipeline)):
        assert cfg[loader].dataset.pipeline == pipeline, loader


def test_seg_pipelines_take_reduce_zero_label_from_the_dataset():
    # mmseg warns "`reduce_zero_label` will be deprecated" for every
    # LoadAnnotations given the argument; the dataset sets it per sample
    for path in CONFIGS:
        cfg = Config.fromfile(str(path))
        if cfg.get('default_scope') != 'mmseg':
            continue
        for node in _walk(cfg._cfg_dict.to_dict()):
            if node.get('type') == 'LoadAnnotations':
                assert 'reduce_zero_label' not in node, path.name
