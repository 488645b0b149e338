"""The image-size bound of evaluation and inference
(mmtinyvim.datasets.size_limit): every shipped test pipeline refuses an image
with more pixels than its toolbox's limit, with one error naming the file,
its size, the limit and how to raise it, in the datasets, the toolboxes'
Inferencers and tools/test.py (--max-side). Small images against a low limit
stand in for huge ones."""
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

import mmtinyvim
from mmtinyvim.datasets import size_limit
from mmtinyvim.datasets.make_demo_data import make_demo_data
from mmtinyvim.datasets.size_limit import (MAX_SIDE, CheckMaxImageSize,
                                           ImageTooLargeError,
                                           bound_image_size)

from tests.modules import load_file

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {'mmdet': 'maskrcnn_tinyvim_s_coco',
           'mmseg': 'fpn_mobilemamba_t2_ade20k',
           'mmpretrain': 'mobilemamba_t2_in1k'}
TASK = {'mmdet': 'coco', 'mmseg': 'ade', 'mmpretrain': 'imagenet'}
SIDE = 64  # the demo images; a limit of 32 refuses them


def check(max_side, width, height, path='img.jpg'):
    return CheckMaxImageSize(max_side=max_side).transform(
        dict(img=np.zeros((height, width, 3), np.uint8), img_path=path))


def test_image_above_the_limit_is_one_clear_error(tmp_path):
    path = str(tmp_path / 'large.jpg')
    mmcv.imwrite(np.zeros((48, 64, 3), np.uint8), path)
    pipeline = Compose([dict(type='LoadImageFromFile'),
                        dict(type='CheckMaxImageSize', max_side=40)])
    with pytest.raises(ImageTooLargeError) as error:
        pipeline(dict(img_path=path))
    message = str(error.value)
    assert message.startswith(f'Image {path} is 64x48 pixels (0.00307 '
                              'megapixels), more than the 40x40 (0.0016 '
                              'megapixels) that evaluation and inference '
                              'allow')
    assert 'tools/test.py --max-side N' in message
    assert 'test_dataloader.dataset.pipeline.1.max_side=N' in message


@pytest.mark.parametrize('width, height', [(40, 40), (160, 10), (1, 1)])
def test_images_within_the_limit_pass(width, height):
    """The limit is the pixel count of a max_side square, whatever the
    shape: memory follows the pixel count."""
    results = check(40, width, height)
    assert results['img'].shape[:2] == (height, width)


@pytest.mark.parametrize('width, height', [(41, 40), (161, 10)])
def test_one_pixel_row_above_the_limit_is_refused(width, height):
    with pytest.raises(ImageTooLargeError, match=f'is {width}x{height} '):
        check(40, width, height)


def test_an_array_input_is_named_as_the_image():
    with pytest.raises(ImageTooLargeError, match='^The image is 64x48 '):
        check(40, 64, 48, path=None)


@pytest.mark.parametrize('scope', sorted(MAX_SIDE))
def test_default_limit_is_the_toolbox_s(scope):
    with DefaultScope.overwrite_default_scope(scope):
        pipeline = Compose([dict(type='CheckMaxImageSize')])
    assert pipeline.transforms[0].max_side == MAX_SIDE[scope]


def test_no_default_limit_outside_a_toolbox_scope():
    with pytest.raises(ValueError, match="scope None: give max_side"):
        CheckMaxImageSize()


@pytest.mark.parametrize('max_side', [0, -1, 2.5, '4096', True])
def test_bad_limit_is_one_clear_error(max_side):
    with pytest.raises(ValueError,
                       match=r'max_side must be an int >= 1 .*, got '):
        CheckMaxImageSize(max_side=max_side)


def _test_pipelines(cfg):
    """(where, pipeline) of every dataset pipeline a test or validation run
    builds from ``cfg``, and its TTA pipeline."""
    found = []
    for key in ('val_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        while 'dataset' in dataset:  # RepeatDataset and friends
            dataset = dataset.dataset
        found.append((key, dataset.pipeline))
    if 'tta_pipeline' in cfg:
        found.append(('tta_pipeline', cfg.tta_pipeline))
    return found


@pytest.mark.parametrize('name', mmtinyvim.list_configs())
def test_every_config_checks_the_size_right_after_loading(name):
    cfg = Config.fromfile(mmtinyvim.get_config_path(name),
                          import_custom_modules=False)
    for where, pipeline in _test_pipelines(cfg):
        types = [step['type'] for step in pipeline]
        assert types[:2] == ['LoadImageFromFile', 'CheckMaxImageSize'], (
            where, types)
        assert 'max_side' not in pipeline[1], 'the limit is MAX_SIDE\'s'


def test_bound_image_size_sets_or_adds_the_check():
    cfg = Config(dict(
        test_dataloader=dict(dataset=dict(type='RepeatDataset', dataset=dict(
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='Resize')]))),
        tta_pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='CheckMaxImageSize'),
                      dict(type='TestTimeAug')]))
    assert bound_image_size(cfg) == 2
    pipeline = cfg.test_dataloader.dataset.dataset.pipeline
    assert [step['type'] for step in pipeline] == [
        'LoadImageFromFile', 'CheckMaxImageSize', 'Resize']
    assert bound_image_size(cfg, 8192) == 2  # not added twice
    assert pipeline[1]['max_side'] == cfg.tta_pipeline[1]['max_side'] == 8192
    with pytest.raises(ValueError, match='max_side must be an int >= 1'):
        bound_image_size(cfg, 0)


@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    out = tmp_path_factory.mktemp('data')
    return {scope: make_demo_data(task, out, num_train=1, num_val=1,
                                  image_side=SIDE)
            for scope, task in TASK.items()}


def _config(scope, data_root, max_side=32):
    """The shipped config on the demo data, its limit set as the
    --cfg-options the error message names would set it."""
    cfg = Config.fromfile(mmtinyvim.get_config_path(CONFIGS[scope]))
    cfg.merge_from_dict({
        'test_dataloader.dataset.data_root': str(data_root),
        'test_dataloader.dataset.pipeline.1.max_side': max_side})
    if scope == 'mmdet':
        cfg.test_evaluator.ann_file = str(
            data_root / 'annotations' / 'instances_val2017.json')
    return cfg


@pytest.mark.parametrize('scope', sorted(CONFIGS))
def test_evaluation_set_refuses_an_image_above_the_limit(scope, demo_data,
                                                         monkeypatch):
    """The shipped test dataset (what tools/test.py and the toolboxes' own
    test.py build) stops at the image, naming it, without decoding it a
    second time to look for a broken file."""
    from mmengine.registry import DATASETS

    from mmtinyvim.datasets import checks
    full_reads, original = [], checks.image_file_problem

    def image_file_problem(path, full=True):
        if full:
            full_reads.append(path)
        return original(path, full)

    monkeypatch.setattr(checks, 'image_file_problem', image_file_problem)
    cfg = _config(scope, demo_data[scope])
    with DefaultScope.overwrite_default_scope(scope):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        with pytest.raises(ImageTooLargeError,
                           match=r'is \d+x\d+ pixels .* than the '
                           '32x32') as error:
            dataset[0]
    assert str(demo_data[scope]) in str(error.value)
    assert full_reads == []
    # the same set at the default limit
    cfg = _config(scope, demo_data[scope], max_side=MAX_SIDE[scope])
    with DefaultScope.overwrite_default_scope(scope):
        assert DATASETS.build(cfg.test_dataloader.dataset)[0]


@pytest.mark.parametrize('scope', sorted(CONFIGS))
def test_inferencers_check_at_their_toolbox_s_limit(scope, demo_data):
    """The toolboxes' Inferencers built from the shipped config check at
    the toolbox's limit (mmpretrain's builds its pipeline without a default
    scope) and refuse a larger image."""
    cfg = Config.fromfile(mmtinyvim.get_config_path(CONFIGS[scope]))
    cfg.model.backbone.init_cfg = None
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, device='cpu',
                                   show_progress=False)
    elif scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, device='cpu')
    else:
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(model=cfg,
                                                   pretrained=False)
    check, = [step for step in inferencer.pipeline.transforms
              if isinstance(step, CheckMaxImageSize)]
    assert check.max_side == MAX_SIDE[scope]
    check.max_side = 32
    with pytest.raises(ImageTooLargeError,
                       match=f'^The image is {SIDE}x{SIDE} pixels'):
        inferencer(np.zeros((SIDE, SIDE, 3), np.uint8))


def _test_tool():
    """tools/test.py as a module (its name would clash with Python's test
    package)."""
    sys.path.insert(0, str(REPO / 'tools'))
    return load_file('tools/test.py', 'mmtinyvim_test_tool')


def test_test_tool_max_side_reaches_the_check(demo_data, tmp_path):
    """tools/test.py --max-side sets the limit of the config's check: 32
    refuses the 64 px demo images, naming the file, before any metric."""
    from mmseg.registry import MODELS
    tool = _test_tool()
    config = mmtinyvim.get_config_path(CONFIGS['mmseg'])
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    root = demo_data['mmseg']
    argv = [config, str(checkpoint), '--work-dir', str(tmp_path),
            '--cfg-options', f'test_dataloader.dataset.data_root={root}',
            'model.backbone.init_cfg=None', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False']
    with pytest.raises(ImageTooLargeError,
                       match=f'^Image {root}/images/validation/.* is '
                       r'\d+x\d+ pixels .* than the 32x32 '):
        tool.main(argv + ['--max-side', '32'])


def test_test_tool_max_side_must_be_a_usable_size(capsys):
    tool = _test_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(['config.py', 'model.pth', '--max-side', '8'])
    assert '--max-side must be >= 32, got 8' in capsys.readouterr().err


def test_demo_checks_at_the_size_it_downscales_to(monkeypatch, tmp_path):
    """The image demo downscales to the toolbox's limit by default, and its
    Inferencer's check takes the demo's --max-side, so a raised one is not
    refused by the pipeline."""
    sys.path.insert(0, str(REPO / 'tools' / 'demo'))
    import image_demo
    monkeypatch.setitem(size_limit.MAX_SIDE, 'mmpretrain', 48)
    path = tmp_path / 'image.jpg'
    mmcv.imwrite(np.full((SIDE, SIDE, 3), 128, np.uint8), str(path))
    cfg = Config.fromfile(mmtinyvim.get_config_path(CONFIGS['mmpretrain']))
    with pytest.warns(UserWarning, match='downscaled to 48x48'):
        visual, _ = image_demo.paint(str(path), cfg, None)
    assert visual.shape == (48, 48, 3)
    visual, _ = image_demo.paint(str(path), cfg, None, max_side=SIDE)
    assert visual.shape == (SIDE, SIDE, 3)
