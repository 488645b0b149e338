"""tools/demo/image_demo.py for every task: the picture has the input's size
(or the downscaled size above --max-side, with a warning), the prediction
matches the image, random weights run when asked, and the dataset's own class
names are drawn."""
import json
import re
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch

from mmtinyvim.datasets.meta import dataset_meta_from_config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools' / 'demo'))
import image_demo  # noqa: E402

DET_CONFIG = str(REPO / 'configs/maskrcnn_tinyvim_s_coco.py')
SEG_CONFIG = str(REPO / 'configs/fpn_mobilemamba_t2_ade20k.py')
CLS_CONFIG = str(REPO / 'configs/tinyvim_s_in1k.py')
H, W = 60, 90  # odd aspect on purpose: a transposed or row-only result fails


def small(config, scale):
    """The config with a small test resize, for a fast CPU run."""
    cfg = image_demo.load_config(config)
    pipeline = cfg.test_dataloader.dataset.pipeline
    for step in pipeline:
        if step['type'] == 'Resize':
            step['scale'] = scale
        if step['type'] == 'ResizeEdge':
            step['scale'] = scale[0]
        if step['type'] == 'CenterCrop':
            step['crop_size'] = scale[0]
    return cfg


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('demo') / 'image.jpg'
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3)).astype(np.uint8)
    img[10:40, 20:60] = (40, 140, 250)
    mmcv.imwrite(img, str(path))
    return str(path)


def test_segmentation_picture_and_label_map_match_the_image(image):
    cfg = small(SEG_CONFIG, (128, 64))
    with pytest.warns(UserWarning, match='RANDOMLY INITIALISED'):
        visual, prediction = image_demo.paint(image, cfg, None)
    assert visual.shape == (H, W, 3)
    assert tuple(prediction.pred_sem_seg.shape) == (H, W)


def test_segmentation_with_checkpoint_lacking_meta(image, tmp_path):
    """A converted checkpoint (weights, no dataset_meta): the picture and
    the label map are the image's size, the classes ADE20K's."""
    cfg = small(SEG_CONFIG, (128, 64))
    from mmseg.apis import init_model
    model = init_model(cfg.copy(), None, 'cpu')
    path = tmp_path / 'converted.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    visual, prediction = image_demo.paint(image, cfg, str(path))
    assert visual.shape == (H, W, 3)
    assert tuple(prediction.pred_sem_seg.shape) == (H, W)
    assert image_demo.resolve_dataset_meta(cfg, str(path))['classes'][0] \
        == 'wall'


@pytest.mark.parametrize('config', sorted(
    str(p) for p in (REPO / 'configs').glob('*.py')))
def test_every_config_has_its_dataset_classes(config):
    cfg = image_demo.load_config(config)
    classes = dataset_meta_from_config(cfg)['classes']
    expected = {'mmdet': (80, 'person'), 'mmseg': (150, 'wall'),
                'mmpretrain': (1000, 'tench, Tinca tinca')}
    assert (len(classes), classes[0]) == expected[cfg.default_scope]


def test_segmentation_draws_ade20k_classes_without_checkpoint():
    cfg = small(SEG_CONFIG, (128, 64))
    meta = image_demo.resolve_dataset_meta(cfg, None)
    inferencer = image_demo.build_inferencer(cfg, None, 'cpu', meta)
    classes = inferencer.visualizer.dataset_meta['classes']
    assert len(classes) == 150 and classes[0] == 'wall'
    assert len(inferencer.visualizer.dataset_meta['palette']) == 150


def test_checkpoint_without_dataset_meta_falls_back_to_config(tmp_path):
    cfg = small(SEG_CONFIG, (128, 64))
    path = tmp_path / 'converted.pth'
    torch.save(dict(state_dict={}, meta=dict()), path)
    assert image_demo.resolve_dataset_meta(cfg, str(path))['classes'][0] == \
        'wall'
    torch.save(dict(state_dict={}, meta=dict(dataset_meta=dict(
        classes=('a', 'b')))), path)
    assert image_demo.resolve_dataset_meta(cfg, str(path))['classes'] == \
        ('a', 'b')


def test_detection_picture_and_boxes_match_the_image(image):
    cfg = small(DET_CONFIG, (128, 128))
    with pytest.warns(UserWarning, match='RANDOMLY INITIALISED'):
        visual, prediction = image_demo.paint(image, cfg, None, score_thr=0)
    assert visual.shape == (H, W, 3)
    instances = prediction.pred_instances
    boxes = instances.bboxes
    assert boxes.shape[1] == 4
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= W).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= H).all()
    if len(boxes):
        assert tuple(instances.masks.shape[1:]) == (H, W)
    meta = image_demo.resolve_dataset_meta(cfg, None)
    assert len(meta['classes']) == 80 and meta['classes'][0] == 'person'


def test_classification_picture_and_scores(image):
    cfg = small(CLS_CONFIG, (64, 64))
    with pytest.warns(UserWarning, match='RANDOMLY INITIALISED'):
        visual, prediction = image_demo.paint(image, cfg, None)
    assert visual.shape == (H, W, 3)
    assert tuple(prediction.pred_score.shape) == (1000, )
    meta = image_demo.resolve_dataset_meta(cfg, None)
    assert len(meta['classes']) == 1000 and 'tench' in meta['classes'][0]


def test_large_image_is_downscaled_with_a_warning(tmp_path):
    path = tmp_path / 'wide.jpg'
    mmcv.imwrite(np.full((300, 5000, 3), 128, np.uint8), str(path))
    out = tmp_path / 'out.jpg'
    cfg = small(CLS_CONFIG, (64, 64))
    with pytest.warns(UserWarning, match='downscaled to 256x15'):
        visual, _ = image_demo.paint(str(path), cfg, None, max_side=256)
    assert visual.shape == (15, 256, 3)
    # the command line: same downscale, the warning on stderr
    result = subprocess.run(
        [sys.executable, 'tools/demo/image_demo.py', str(path), CLS_CONFIG,
         '--random-weights', '--max-side', '256', '--out-file', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'above --max-side 256' in result.stderr
    assert 'RANDOMLY INITIALISED' in result.stderr
    assert mmcv.imread(str(out)).shape == (15, 256, 3)


@pytest.mark.parametrize('argv, message', [
    ([], 'no checkpoint given'),
    (['ckpt.pth', '--random-weights'], 'not both'),
    (['--random-weights', '--max-side', '8'], '--max-side must be >= 32'),
])
def test_bad_arguments_are_one_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit):
        image_demo.parse_args(['image.jpg', CLS_CONFIG, *argv,
                               '--out-file', 'x.jpg'])
    assert message in capsys.readouterr().err


# ------------------------------------------- pictures: curves, benchmark --

sys.path.insert(0, str(REPO / 'tools' / 'analysis_tools'))
import plot_benchmark  # noqa: E402
import plot_curves  # noqa: E402


def write_scalars(work_dir):
    """A small epoch-based mmengine log: 2 epochs of 3 iterations, a
    validation after each epoch (its ``step`` is the epoch)."""
    vis = work_dir / '20261130_120000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = []
    for epoch in (1, 2):
        for k in range(1, 4):
            it = (epoch - 1) * 3 + k
            lines.append(dict(lr=0.01, loss=2.0 / it, loss_cls=1.0 / it,
                              loss_mask=0.5 / it, time=0.1, epoch=epoch,
                              iter=it, step=it))
        lines.append({'coco/bbox_mAP': 0.1 * epoch, 'time': 0.05,
                      'step': epoch})
    path = vis / 'scalars.json'
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


def test_plot_curves_writes_png_with_val_at_train_iterations(tmp_path):
    scalars = write_scalars(tmp_path / 'run')
    train, val = plot_curves.read_scalars(str(scalars))
    assert [x for x, _ in val['coco/bbox_mAP']] == [3, 6]
    assert [x for x, _ in train['loss']] == [1, 2, 3, 4, 5, 6]
    out = tmp_path / 'curves.png'
    plot_curves.main([str(tmp_path / 'run'), '--keys', 'loss',
                      'coco/bbox_mAP', '--out', str(out)])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert out.stat().st_size > 5000
    # default keys: the loss terms only
    runs = [('run', train, val)]
    assert plot_curves.select_keys(runs, None) == ['loss', 'loss_cls',
                                                   'loss_mask']


def test_plot_curves_wrong_key_lists_available(tmp_path, capsys):
    write_scalars(tmp_path / 'run')
    with pytest.raises(SystemExit) as exc:
        plot_curves.main([str(tmp_path / 'run'), '--keys', 'bbox_mAP',
                          '--out', str(tmp_path / 'x.png')])
    message = str(exc.value)
    assert "['bbox_mAP'] not in the logs" in message
    assert 'coco/bbox_mAP' in message and 'loss_mask' in message
    assert not (tmp_path / 'x.png').exists()
    with pytest.raises(SystemExit, match='no <timestamp>/vis_data'):
        plot_curves.main([str(tmp_path), '--out', str(tmp_path / 'x.png')])


BENCHMARK = REPO / 'docs' / 'benchmark_h200.json'


def test_plot_benchmark_writes_small_pngs(tmp_path):
    plot_benchmark.main([str(BENCHMARK), '--out-dir', str(tmp_path)])
    for name in ('benchmark_inference.png', 'benchmark_training.png'):
        path = tmp_path / name
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert 10_000 < path.stat().st_size < 200_000
    data = plot_benchmark.load_benchmark(str(BENCHMARK))
    rows = data['inference']['rows']
    ratios = plot_benchmark.inference_ratios(rows, 'amp')
    assert len(ratios) == len(rows)
    for row, (label, best, eager, api) in zip(rows, ratios):
        amp = row['amp']
        # the reference is the better of the official code and its fused form
        assert label.split('\n')[0] == row['variant']
        assert best == max(amp['official'], amp['official_fused'])
        assert eager == pytest.approx(amp['mmtinyvim_eager'] / best)
        assert api == pytest.approx(amp['mmtinyvim_api'] / best)


def test_committed_benchmark_pictures_are_small():
    for name in ('benchmark_inference.png', 'benchmark_training.png'):
        assert (REPO / 'docs' / 'images' / name).stat().st_size < 200_000


@pytest.mark.parametrize('edit, message', [
    (lambda d: d.pop('date'), "lacks the field(s) ['date']"),
    (lambda d: d['inference']['rows'][2]['amp'].pop('mmtinyvim_api'),
     "inference.rows[2].amp lacks the field(s) ['mmtinyvim_api']"),
    (lambda d: d['training']['rows'][0].update(official='fast'),
     'training.rows[0].official must be a positive number'),
])
def test_plot_benchmark_bad_json_is_one_clear_error(tmp_path, edit,
                                                    message):
    data = json.loads(BENCHMARK.read_text())
    edit(data)
    path = tmp_path / 'bench.json'
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=re.escape(message)):
        plot_benchmark.main([str(path), '--out-dir', str(tmp_path)])
    assert not list(tmp_path.glob('*.png'))


# ------------------------------------------------- progress (demo data) --

def test_demo_data_progress_bar_only_for_many_images(tmp_path, capsys):
    from mmtinyvim.datasets import make_demo_data as mdd
    mdd.make_demo_data('imagenet', tmp_path / 'few', num_train=4, num_val=1,
                       image_side=32)
    assert capsys.readouterr().err == ''
    mdd.make_demo_data('imagenet', tmp_path / 'many',
                       num_train=mdd.PROGRESS_MIN_IMAGES, num_val=1,
                       image_side=32)
    err = capsys.readouterr().err
    total = mdd.PROGRESS_MIN_IMAGES + 1
    assert f'writing {total} images' in err and f'{total}/{total}' in err
    mdd.make_demo_data('imagenet', tmp_path / 'quiet',
                       num_train=mdd.PROGRESS_MIN_IMAGES, num_val=1,
                       image_side=32, progress=False)
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('config', [DET_CONFIG, SEG_CONFIG, CLS_CONFIG])
def test_inferencers_log_no_registry_scope_warning(config,
                                                   logged_warnings):
    # mmdet/mmseg/mmpretrain have no FUNCTIONS registry: the stock lookup
    # under their scope logs "Failed to search registry with scope ..."
    cfg = image_demo.load_config(config)
    image_demo.build_inferencer(cfg)
    assert not [m for m in logged_warnings if 'Failed to search' in m]


def test_main_job_pins_its_thread_count():
    # float sums are ordered per intra-op thread count: the README's
    # numbers hold for one count, whatever the machine's core count
    sys.path.insert(0, str(REPO / 'tools' / 'demo'))
    import train_demo
    assert train_demo.parse_args([]).threads == train_demo.THREADS == 2
    assert train_demo.parse_args(['--threads', '4']).threads == 4
