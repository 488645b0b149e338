"""The demo-data generator writes the real COCO / ADE20K / ImageNet layouts
with exact, learnable content, and the Checked* datasets fail clearly on a
missing path or an empty image list."""
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from mmtinyvim.datasets import make_demo_data as gen
from mmtinyvim.datasets.checks import EmptyDatasetError

NUM_TRAIN, NUM_VAL, SIDE = 6, 3, 96


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    out = tmp_path_factory.mktemp('data')
    return out, {task: gen.make_demo_data(task, out, NUM_TRAIN, NUM_VAL,
                                          SIDE, seed=0)
                 for task in gen.TASKS}


# ------------------------------------------------------------------ COCO --

def test_coco_layout_categories_and_exact_masks(roots):
    _, paths = roots
    root = paths['coco']
    assert root == roots[0] / 'coco'
    for split, count in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        coco = COCO(str(root / 'annotations' / f'instances_{split}2017.json'))
        assert len(coco.getImgIds()) == count
        cats = coco.loadCats(coco.getCatIds())
        assert len(cats) == 80
        assert {c['id'] for c in cats} == set(gen.COCO_CATEGORY_IDS)
        names = {c['id']: c['name'] for c in cats}
        assert names[1] == 'person' and names[90] == 'toothbrush'
        kinds = set()
        for image in coco.loadImgs(coco.getImgIds()):
            pixels = cv2.imread(str(root / f'{split}2017' /
                                    image['file_name']))
            assert pixels.shape[:2] == (image['height'], image['width'])
            occupied = np.zeros(pixels.shape[:2], bool)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
                mask = coco.annToMask(ann).astype(bool)
                kinds.add(type(ann['segmentation']).__name__)
                assert mask.sum() == ann['area'] > 0
                ys, xs = np.nonzero(mask)
                assert ann['bbox'] == [xs.min(), ys.min(),
                                       xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1]
                assert not (occupied & mask).any(), 'instances overlap'
                occupied |= mask
                shape, colour = gen.COCO_DEMO_CLASSES[names[
                    ann['category_id']]]
                inner = cv2.erode(mask.astype(np.uint8),
                                  np.ones((3, 3), np.uint8)).astype(bool)
                mean = pixels[inner].mean(axis=0)
                assert np.abs(mean - colour).max() < 40, (shape, mean)
        assert kinds == {'list', 'dict'}  # polygons and RLE


def test_coco_loads_in_checked_dataset_with_all_instances(roots):
    from mmtinyvim.datasets.coco import CheckedCocoDataset
    root = roots[1]['coco']
    dataset = CheckedCocoDataset(
        data_root=str(root), ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=[])
    assert len(dataset) == NUM_TRAIN
    labels = {inst['bbox_label'] for i in range(len(dataset))
              for inst in dataset.get_data_info(i)['instances']}
    classes = dataset.metainfo['classes']
    assert {classes[k] for k in labels} <= set(gen.COCO_DEMO_CLASSES)


def test_generation_is_deterministic(tmp_path):
    first = gen.make_demo_data('coco', tmp_path / 'a', 3, 1, 64, seed=7)
    second = gen.make_demo_data('coco', tmp_path / 'b', 3, 1, 64, seed=7)
    third = gen.make_demo_data('coco', tmp_path / 'c', 3, 1, 64, seed=8)
    ann = 'annotations/instances_train2017.json'
    assert (first / ann).read_text() == (second / ann).read_text()
    assert (first / ann).read_text() != (third / ann).read_text()


# ---------------------------------------------------------------- ADE20K --

def test_ade_layout_and_reduce_zero_label(roots):
    from mmseg.datasets.transforms import LoadAnnotations

    from mmtinyvim.datasets.ade import CheckedADE20KDataset
    root = roots[1]['ade']
    assert root == roots[0] / 'ade' / 'ADEChallengeData2016'
    names = CheckedADE20KDataset.METAINFO['classes']
    used = {names.index(n) + 1 for n in list(gen.ADE_DEMO_CLASSES) +
            [gen.ADE_SKY, gen.ADE_FLOOR]}
    for split, prefix, count in (('training', 'train', NUM_TRAIN),
                                 ('validation', 'val', NUM_VAL)):
        images = sorted((root / 'images' / split).glob('*.jpg'))
        labels = sorted((root / 'annotations' / split).glob('*.png'))
        assert [p.stem for p in images] == [p.stem for p in labels] == [
            f'ADE_{prefix}_{k:08d}' for k in range(1, count + 1)]
        for label_path in labels:
            label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
            assert label.dtype == np.uint8 and label.ndim == 2
            values = set(np.unique(label).tolist())
            assert 0 in values and values - {0} <= used
            assert (label[0] == 0).all()  # the unlabelled frame
    dataset = CheckedADE20KDataset(
        data_root=str(root),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[])
    assert len(dataset) == NUM_VAL
    info = dataset.get_data_info(0)
    loaded = LoadAnnotations(reduce_zero_label=True)(dict(info))
    raw = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
    reduced = loaded['gt_seg_map']
    assert (reduced[raw == 0] == 255).all()
    assert (reduced[raw > 0] == raw[raw > 0] - 1).all()


# -------------------------------------------------------------- ImageNet --

def test_imagenet_layout(roots):
    from mmtinyvim.datasets.imagenet import CheckedImageNet
    root = roots[1]['imagenet']
    train_lines = (root / 'meta' / 'train.txt').read_text().split('\n')[:-1]
    assert len(train_lines) == NUM_TRAIN
    for line in train_lines:
        name, label = line.rsplit(' ', 1)
        wnid = gen.IMAGENET_DEMO_CLASSES[int(label)][0]
        assert name.startswith(f'{wnid}/{wnid}_') and name.endswith('.JPEG')
        assert (root / 'train' / name).is_file()
    val = CheckedImageNet(data_root=str(root), split='val', pipeline=[])
    assert len(val) == NUM_VAL
    assert val.get_data_info(0)['img_path'].endswith(
        'val/ILSVRC2012_val_00000001.JPEG')
    assert len(val.metainfo['classes']) == 1000
    train = CheckedImageNet(data_root=str(root), split='train', pipeline=[])
    assert [train.get_data_info(i)['gt_label'] for i in range(3)] == [0, 1, 2]


# ------------------------------------------------------------ bad input --

def test_missing_coco_path_says_where_and_how(tmp_path):
    from mmtinyvim.datasets.coco import CheckedCocoDataset
    root = tmp_path / 'elsewhere' / 'coco'
    with pytest.raises(FileNotFoundError) as err:
        CheckedCocoDataset(data_root=str(root) + '/',
                           ann_file='annotations/instances_train2017.json',
                           data_prefix=dict(img='train2017/'), pipeline=[])
    message = str(err.value)
    assert str(root / 'annotations' / 'instances_train2017.json') in message
    assert ('python -m mmtinyvim.datasets.make_demo_data --task coco '
            f'--out-root {tmp_path / "elsewhere"}') in message


def test_missing_ade_and_imagenet_paths(tmp_path):
    from mmtinyvim.datasets.ade import CheckedADE20KDataset
    from mmtinyvim.datasets.imagenet import CheckedImageNet
    with pytest.raises(FileNotFoundError,
                       match=r'ADE20K image directory not found: .*'
                       r'images/training[\s\S]*--task ade --out-root '):
        CheckedADE20KDataset(
            data_root=str(tmp_path / 'ade' / 'ADEChallengeData2016'),
            data_prefix=dict(img_path='images/training',
                             seg_map_path='annotations/training'),
            pipeline=[])
    with pytest.raises(FileNotFoundError,
                       match=r'ImageNet image directory not found: .*train'
                       r'[\s\S]*--task imagenet'):
        CheckedImageNet(data_root=str(tmp_path / 'imagenet'), split='train',
                        pipeline=[])


def test_empty_image_list_is_one_clear_error(roots, tmp_path):
    from mmtinyvim.datasets.coco import CheckedCocoDataset
    source = roots[1]['coco'] / 'annotations' / 'instances_val2017.json'
    content = json.loads(source.read_text())
    content.update(images=[], annotations=[])
    ann = tmp_path / 'empty.json'
    ann.write_text(json.dumps(content))
    (tmp_path / 'img').mkdir()
    with pytest.raises(EmptyDatasetError,
                       match=r'empty\.json lists no image \(its "images" '
                       r'list is empty\)'):
        CheckedCocoDataset(data_root=str(tmp_path), ann_file='empty.json',
                           data_prefix=dict(img='img/'), pipeline=[])


def test_annotations_of_no_known_class_are_one_clear_error(roots, tmp_path):
    from mmtinyvim.datasets.coco import CheckedCocoDataset
    source = roots[1]['coco'] / 'annotations' / 'instances_val2017.json'
    content = json.loads(source.read_text())
    for cat in content['categories']:
        cat['name'] = 'renamed ' + cat['name']
    ann = tmp_path / 'renamed.json'
    ann.write_text(json.dumps(content))
    with pytest.raises(EmptyDatasetError,
                       match=f'removed all {NUM_VAL} images of .*renamed'):
        CheckedCocoDataset(
            data_root=str(tmp_path), ann_file='renamed.json',
            data_prefix=dict(img=str(roots[1]['coco'] / 'val2017') + '/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=[])


def test_empty_ade_directory_is_one_clear_error(tmp_path):
    from mmtinyvim.datasets.ade import CheckedADE20KDataset
    for sub in ('images/training', 'annotations/training'):
        (tmp_path / sub).mkdir(parents=True)
    with pytest.raises(EmptyDatasetError, match=r'images/training lists no '
                       r'"\*\.jpg" image'):
        CheckedADE20KDataset(
            data_root=str(tmp_path),
            data_prefix=dict(img_path='images/training',
                             seg_map_path='annotations/training'),
            pipeline=[])


def test_generator_protects_existing_data(tmp_path):
    real = tmp_path / 'coco'
    real.mkdir()
    (real / 'instances.json').write_text('{}')
    with pytest.raises(gen.DemoDataError, match='was not written by this '
                       'script'):
        gen.make_demo_data('coco', tmp_path, 2, 1, 64)
    assert (real / 'instances.json').is_file()

    demo_root = tmp_path / 'demo'
    gen.make_demo_data('imagenet', demo_root, 2, 1, 64)
    with pytest.raises(gen.DemoDataError, match='--overwrite'):
        gen.make_demo_data('imagenet', demo_root, 3, 1, 64)
    root = gen.make_demo_data('imagenet', demo_root, 3, 1, 64,
                              overwrite=True)
    assert len((root / 'meta' / 'train.txt').read_text().split()) == 6


def test_generator_cli(tmp_path, capsys):
    gen.main(['--task', 'imagenet', '--out-root', str(tmp_path),
              '--num-train', '2', '--num-val', '1', '--image-side', '48'])
    assert 'imagenet: wrote 2 train / 1 val images' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='already holds demo data'):
        gen.main(['--task', 'imagenet', '--out-root', str(tmp_path)])
    with pytest.raises(ValueError, match='image_side must be >= 32'):
        gen.make_demo_data('coco', tmp_path / 'x', 2, 1, 16)
