"""The demo-data generator writes the real COCO / ADE20K / ImageNet layouts
with exact, learnable content, and the Checked* datasets fail clearly on a
missing path, an empty image list, a broken annotation file or image."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
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


# ------------------------------------------- unreadable images, bad files --

def _break(path, kind):
    """Make ``path`` a bad file of ``kind``; returns the expected reason."""
    if kind == 'missing':
        path.unlink()
        return 'file not found'
    if kind == 'truncated':  # OpenCV alone decodes this, painting grey
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return 'truncated JPEG'
    path.write_bytes(bytes(range(256)) * 4)  # 'random bytes'
    return r"not a decodable image \(1024 bytes starting with b'\\x00\\x01"


def _dataset(task, root, split, **kwargs):
    """A Checked* dataset of ``task`` loading its files (pipeline without
    augmentation), and the data_info key of the file to break."""
    from mmcv.transforms import LoadImageFromFile
    if task == 'coco':
        from mmtinyvim.datasets.coco import CheckedCocoDataset
        return CheckedCocoDataset(
            data_root=str(root), test_mode=split == 'val',
            ann_file=f'annotations/instances_{split}2017.json',
            data_prefix=dict(img=f'{split}2017/'),
            pipeline=[LoadImageFromFile()], **kwargs)
    if task == 'ade':
        from mmseg.datasets.transforms import LoadAnnotations

        from mmtinyvim.datasets.ade import CheckedADE20KDataset
        split = 'training' if split == 'train' else 'validation'
        return CheckedADE20KDataset(
            data_root=str(root),
            data_prefix=dict(img_path=f'images/{split}',
                             seg_map_path=f'annotations/{split}'),
            pipeline=[LoadImageFromFile(),
                      LoadAnnotations(reduce_zero_label=True)], **kwargs)
    from mmtinyvim.datasets.imagenet import CheckedImageNet
    return CheckedImageNet(data_root=str(root), split=split,
                           pipeline=[LoadImageFromFile()], **kwargs)


@pytest.mark.parametrize('task,kind,key', [
    ('coco', 'random bytes', 'img_path'),
    ('coco', 'truncated', 'img_path'),
    ('coco', 'missing', 'img_path'),
    ('ade', 'random bytes', 'img_path'),
    ('ade', 'missing', 'seg_map_path'),
    ('imagenet', 'truncated', 'img_path'),
    ('imagenet', 'missing', 'img_path'),
])
def test_bad_training_file_is_skipped_with_one_warning(
        task, kind, key, tmp_path, logged_warnings):
    root = gen.make_demo_data(task, tmp_path, 3, 1, 64, seed=0)
    dataset = _dataset(task, root, 'train')  # reads no image
    bad = dataset.get_data_info(0)[key]
    reason = _break(Path(bad), kind)
    np.random.seed(0)  # mmengine draws the replacement with numpy
    loader = torch.utils.data.DataLoader(dataset, batch_size=1,
                                         collate_fn=lambda batch: batch[0])
    samples = [sample for _ in range(3) for sample in loader]
    assert len(samples) == 9 and all(s[key] != bad for s in samples)
    assert all(s['img'].ndim == 3 for s in samples)
    about_bad = [m for m in logged_warnings if bad in m]
    print(f'\n{about_bad[0]}')
    assert len(about_bad) == 1, 'one warning per file, however often drawn'
    what = 'label map' if key == 'seg_map_path' else 'image'
    assert re.match(f'Skipping the training sample with the unreadable '
                    f'{what} {re.escape(bad)}: {reason}', about_bad[0])


@pytest.mark.parametrize('task,kind,key', [
    ('coco', 'random bytes', 'img_path'),
    ('ade', 'missing', 'seg_map_path'),
    ('imagenet', 'truncated', 'img_path'),
])
def test_bad_evaluation_file_is_one_clear_error(task, kind, key, tmp_path):
    """Skipping would change the metrics: COCO's test_mode, ADE20K's
    validation directory and ImageNet's val split refuse."""
    from mmtinyvim.datasets.checks import BadImageError
    root = gen.make_demo_data(task, tmp_path, 1, 2, 64, seed=0)
    dataset = _dataset(task, root, 'val')
    assert dataset.on_bad_image == 'raise'
    bad = dataset.get_data_info(1)[key]
    reason = _break(Path(bad), kind)
    assert dataset[0]['img'].ndim == 3
    with pytest.raises(BadImageError) as err:
        dataset[1]
    print(f'\n{err.value}')
    what = 'label map' if key == 'seg_map_path' else 'image'
    assert re.match(f'Cannot read the {what} {re.escape(bad)}: {reason}',
                    str(err.value))
    assert 'skipping samples would silently change the metrics' in str(
        err.value)


def test_many_bad_training_files_in_a_row_are_one_error(tmp_path):
    from mmtinyvim.datasets.checks import BadImageError
    root = gen.make_demo_data('coco', tmp_path, 3, 1, 64, seed=0)
    dataset = _dataset('coco', root, 'train', max_bad_in_a_row=4)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(3)]
    for path in paths:
        Path(path).unlink()
    np.random.seed(0)
    with pytest.raises(BadImageError) as err:
        dataset[0]
    print(f'\n{err.value}')
    message = str(err.value)
    assert re.match(r'5 training samples in a row could not be read \(more '
                    r'than max_bad_in_a_row=4\), from [23] files: ', message)
    assert message.count(paths[0] + ' (file not found)') == 1
    assert 'do data_root / data_prefix point at it?' in message


def test_pipeline_errors_with_good_files_are_not_swallowed(tmp_path):
    """Only a bad file is skipped: a failing transform raises as before."""
    from mmtinyvim.datasets.coco import CheckedCocoDataset

    def broken_transform(results):
        raise KeyError('a bug in a transform')

    root = gen.make_demo_data('coco', tmp_path, 2, 1, 64, seed=0)
    dataset = CheckedCocoDataset(
        data_root=str(root), ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'), pipeline=[broken_transform])
    with pytest.raises(KeyError, match='a bug in a transform'):
        dataset[0]


def test_bad_image_policy_arguments(tmp_path):
    root = gen.make_demo_data('coco', tmp_path, 2, 1, 64, seed=0)
    with pytest.raises(ValueError, match="on_bad_image='drop'; valid: "
                       "'skip', 'raise'"):
        _dataset('coco', root, 'train', on_bad_image='drop')
    with pytest.raises(ValueError, match="on_bad_image='skip' needs "
                       'test_mode=False'):
        _dataset('coco', root, 'val', on_bad_image='skip')
    assert _dataset('coco', root, 'train',
                    on_bad_image='raise').on_bad_image == 'raise'


def test_invalid_annotation_json_names_file_line_and_column(roots,
                                                            tmp_path):
    from mmtinyvim.datasets.checks import AnnotationFileError
    from mmtinyvim.datasets.coco import CheckedCocoDataset
    source = roots[1]['coco'] / 'annotations' / 'instances_val2017.json'
    text = json.dumps(json.loads(source.read_text()), indent=1)
    lines = text.split('\n')
    lines[3] = lines[3].replace('"', "'")  # single quotes: not JSON
    cases = {'syntax.json': ('\n'.join(lines), 'line 4 column'),
             'cut.json': (text[:len(text) // 2],
                          'the file ends before the JSON does')}
    for name, (content, where) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(AnnotationFileError) as err:
            CheckedCocoDataset(
                data_root=str(tmp_path), ann_file=name,
                data_prefix=dict(img=str(roots[1]['coco'] / 'val2017') + '/'),
                pipeline=[])
        print(f'\n{err.value}')
        assert str(err.value).startswith(
            f'Annotation file {tmp_path / name} is not valid JSON: ')
        assert where in str(err.value)
        assert err.value.__cause__ is None and err.value.__suppress_context__


def test_unlabelled_training_images_are_one_warning(roots, tmp_path,
                                                    logged_warnings):
    from mmtinyvim.datasets.coco import CheckedCocoDataset
    source = roots[1]['coco'] / 'annotations' / 'instances_train2017.json'
    content = json.loads(source.read_text())
    unlabelled = [image['id'] for image in content['images'][:2]]
    content['annotations'] = [a for a in content['annotations']
                              if a['image_id'] not in unlabelled]
    (tmp_path / 'partly.json').write_text(json.dumps(content))
    dataset = CheckedCocoDataset(
        data_root=str(tmp_path), ann_file='partly.json',
        data_prefix=dict(img=str(roots[1]['coco'] / 'train2017') + '/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=[])
    assert len(dataset) == NUM_TRAIN - 2
    about = [m for m in logged_warnings if 'filter_cfg' in m]
    print(f'\n{about}')
    assert about == [
        f"filter_cfg={{'filter_empty_gt': True, 'min_size': 32}} drops 2 of "
        f'the {NUM_TRAIN} training images of {tmp_path / "partly.json"}: 2 '
        'without an annotation of the 80 dataset classes (filter_empty_gt), '
        f'img_id {unlabelled[0]}, {unlabelled[1]}.']


# ------------------------------------ dropped or repaired annotations --

def _coco_ann(ann_id, bbox, segmentation=None, category_id=1, image_id=1):
    return dict(id=ann_id, image_id=image_id, category_id=category_id,
                bbox=bbox, area=100, iscrowd=0,
                segmentation=segmentation or [[10, 10, 20, 10, 20, 20]])


def _coco_with(roots, tmp_path, name, annotations=None, images=None):
    """A CheckedCocoDataset over the demo training images with its
    annotation file ``name`` holding ``annotations`` / ``images``."""
    from mmcv.transforms import LoadImageFromFile

    from mmtinyvim.datasets.coco import CheckedCocoDataset
    source = roots[1]['coco'] / 'annotations' / 'instances_train2017.json'
    content = json.loads(source.read_text())
    if annotations is not None:
        content['annotations'] = annotations
    if images is not None:
        content['images'] = images
    (tmp_path / name).write_text(json.dumps(content))
    return CheckedCocoDataset(
        data_root=str(tmp_path), ann_file=name,
        data_prefix=dict(img=str(roots[1]['coco'] / 'train2017') + '/'),
        pipeline=[LoadImageFromFile()])


def test_dropped_and_repaired_annotations_are_one_report(roots, tmp_path,
                                                         logged_warnings):
    nan, inf = float('nan'), float('inf')
    annotations = [
        _coco_ann(101, [10, 10, 20, 20]),  # fine
        _coco_ann(102, [10, 10, -5, 20]),
        _coco_ann(103, [nan, 10, 20, 20]),
        _coco_ann(104, [10, 10, inf, 20]),
        _coco_ann(105, [10, 10, 0, 20]),
        _coco_ann(106, [80, 80, 40, 40]),  # partly outside the 96 px image
        _coco_ann(107, [200, 200, 10, 10]),
        _coco_ann(108, [10, 10, 20, 20], category_id=999),
        _coco_ann(109, [10, 10, 20, 20], [[1, 2, 3, 4]]),
        _coco_ann(110, [10, 10, 20, 20], [[1, 2, 3, 4, 5, 6, 7],
                                          [10, 10, 20, 10, 20, 20]]),
        _coco_ann(111, [10, 10, 20, 20], [[1, 2, nan, 4, 5, 6]]),
        _coco_ann(112, [10, 10, 20, 20], image_id=777),
        _coco_ann(113, [10, 10, -1, -1], image_id=2),
    ]
    dataset = _coco_with(roots, tmp_path, 'bad_anns.json', annotations)
    path = tmp_path / 'bad_anns.json'
    about = [m for m in logged_warnings if str(path) in m]
    print('\n' + '\n'.join(about))
    assert about == [
        f'COCO annotation file {path}: of its 13 annotations, 11 are dropped '
        'or repaired while loading, and 1 to no listed image:\n'
        '  dropped: 1 (category_id not among the file\'s "categories"), ann '
        'id 108 (img 1)\n'
        '  dropped: 2 (NaN or infinite bbox coordinate), ann id 103 (img 1), '
        '104 (img 1)\n'
        '  dropped: 2 (negative bbox width or height), ann id 102 (img 1), '
        '113 (img 2)\n'
        '  dropped: 1 (bbox width or height < 1 px, or area <= 0), ann id '
        '105 (img 1)\n'
        '  dropped: 1 (bbox outside the image (less than 1 px inside)), ann '
        'id 107 (img 1)\n'
        '  clipped to the image: 1 (bbox partly outside the image), ann id '
        '106 (img 1) (mmdet would keep the box unclipped)\n'
        '  polygon removed: 1 (polygon with fewer than 3 points), ann id 109 '
        '(img 1)\n'
        '  polygon removed: 1 (polygon with an odd number of coordinates), '
        'ann id 110 (img 1)\n'
        '  polygon removed: 1 (polygon with a NaN or infinite coordinate), '
        'ann id 111 (img 1)\n'
        '  no valid polygon left (mask training ignores the annotation, as '
        "mmdet's LoadAnnotations does; box training keeps its box): 2, ann "
        'id 109 (img 1), 111 (img 1)\n'
        '  unused: 1 (image_id not among the file\'s "images"), ann id 112 '
        '(img 777)\n'
        '  images left without an annotation: 1, img_id 2']
    first = dataset.get_data_info(0)
    assert first['img_id'] == 1
    assert [inst['bbox'] for inst in first['instances']] == [
        [10, 10, 30, 30], [80, 80, 96, 96], [10, 10, 30, 30],
        [10, 10, 30, 30], [10, 10, 30, 30]]
    assert [inst['mask'] for inst in first['instances']][2:] == [
        [[]], [[10, 10, 20, 10, 20, 20]], [[]]]


def test_clean_annotation_file_gives_no_report(roots, tmp_path,
                                               logged_warnings):
    _coco_with(roots, tmp_path, 'clean.json')
    assert not [m for m in logged_warnings if 'clean.json' in m]


def test_duplicate_image_ids_are_one_clear_error(roots, tmp_path):
    from mmtinyvim.datasets.coco import DuplicateImageIdError
    source = roots[1]['coco'] / 'annotations' / 'instances_train2017.json'
    images = json.loads(source.read_text())['images']
    images[1]['id'] = images[0]['id']
    with pytest.raises(DuplicateImageIdError) as err:
        _coco_with(roots, tmp_path, 'dup.json', images=images)
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'COCO annotation file {tmp_path / "dup.json"}: image ids listed '
        f'more than once (1): id {images[0]["id"]}: '
        f'{images[0]["file_name"]}, {images[1]["file_name"]}. Image ids must '
        'be unique: pycocotools would keep one image of each id and give it '
        'the annotations of all of them.')


# ---------------------------------------------------- EXIF orientation --

def _exif_rotated_jpeg(path, height=64, width=96):
    """A JPEG stored ``height`` x ``width`` whose EXIF says 'rotate 90'."""
    from PIL import Image
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3),
                                               dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(path, exif=exif.tobytes())


def _exif_dataset(tmp_path, json_height, json_width):
    from mmcv.transforms import LoadImageFromFile

    from mmtinyvim.datasets.coco import CheckedCocoDataset
    (tmp_path / 'img').mkdir()
    _exif_rotated_jpeg(tmp_path / 'img' / 'rotated.jpg')
    content = dict(
        images=[dict(id=1, file_name='rotated.jpg', height=json_height,
                     width=json_width)],
        annotations=[_coco_ann(1, [50, 10, 40, 40])],
        categories=[dict(id=1, name='person')])
    (tmp_path / 'exif.json').write_text(json.dumps(content))
    return CheckedCocoDataset(
        data_root=str(tmp_path), ann_file='exif.json',
        data_prefix=dict(img='img/'), pipeline=[LoadImageFromFile()])


def test_exif_orientation_is_ignored_for_the_image_as_for_the_boxes(
        tmp_path):
    """The JSON's width/height and boxes are of the stored pixels: the
    image is decoded as stored, not turned by its EXIF orientation."""
    dataset = _exif_dataset(tmp_path, json_height=64, json_width=96)
    sample = dataset[0]
    assert sample['img'].shape == (64, 96, 3)
    assert sample['instances'][0]['bbox'] == [50, 10, 90, 50]


def test_image_size_other_than_the_json_is_a_clear_error(tmp_path):
    from mmtinyvim.datasets.coco import ImageSizeMismatchError
    dataset = _exif_dataset(tmp_path, json_height=96, json_width=64)
    with pytest.raises(ImageSizeMismatchError) as err:
        dataset[0]
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'Image {tmp_path / "img" / "rotated.jpg"} decodes to 64x96 (height '
        'x width) but the annotation file gives 96x64; its boxes and masks '
        'would not match the pixels. The sides are swapped: was the image '
        'rotated after annotation (or saved with its EXIF rotation '
        'applied)? Use the image the annotations were made on, or fix its '
        'width/height in the annotation file.')


# ------------------------------------------------- ADE20K label values --

@pytest.mark.parametrize('split', ['train', 'val'])
def test_ade_label_outside_the_class_range_is_a_clear_error(split,
                                                            tmp_path):
    from mmtinyvim.datasets.ade import LabelMapError
    root = gen.make_demo_data('ade', tmp_path, 2, 2, 64, seed=0)
    dataset = _dataset('ade', root, split)
    path = dataset.get_data_info(1)['seg_map_path']
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[5, 5:9] = (150, 151, 199, 255)  # 150 and 255 are valid
    cv2.imwrite(path, label)
    assert dataset[0]['gt_seg_map'].ndim == 2
    with pytest.raises(LabelMapError) as err:
        dataset[1]
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'Label map {path} holds the values 151, 199, outside the valid '
        'range: 0 (unlabelled, ignored), 1-150 (the 150 classes; '
        'reduce_zero_label makes k class k-1) or 255 (ignored). Is it a '
        'label map of this dataset?')


def test_ade_rgb_label_map_is_a_clear_error(tmp_path):
    from mmtinyvim.datasets.ade import LabelMapError
    root = gen.make_demo_data('ade', tmp_path, 2, 1, 64, seed=0)
    dataset = _dataset('ade', root, 'train')
    path = dataset.get_data_info(0)['seg_map_path']
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, np.stack([label, label // 2, label], axis=-1))
    with pytest.raises(LabelMapError) as err:
        dataset[0]
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'Label map {path} has shape (64, 64, 3) once loaded: 3 channels, a '
        'colour (RGB) rendering of the labels? Label maps must be '
        'single-channel (grayscale / palette index) PNGs whose pixel values '
        'are class indices (0 (unlabelled, ignored), 1-150 (the 150 classes; '
        'reduce_zero_label makes k class k-1) or 255 (ignored)).')


# ------------------------------------------ ADE20K label map sizes --

def _resize_label(path, width, height):
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, cv2.resize(label, (width, height),
                                 interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize('split', ['train', 'val'])
def test_ade_label_map_of_another_size_is_a_clear_error(split, tmp_path):
    """Training would resize the map with its image and learn misplaced
    labels; evaluation would fail inside mmseg's metric."""
    from mmtinyvim.datasets.ade import LabelMapError
    root = gen.make_demo_data('ade', tmp_path, 2, 2, 64, seed=0)
    dataset = _dataset('ade', root, split)
    info = dataset.get_data_info(1)
    height, width = cv2.imread(info['img_path']).shape[:2]
    _resize_label(info['seg_map_path'], width + 8, height - 8)
    dataset[0]
    with pytest.raises(LabelMapError) as err:
        dataset[1]
    print(f'\n{err.value}')
    assert str(err.value) == (
        f'Label map {info["seg_map_path"]} is {width + 8}x{height - 8} '
        f'(width x height) but its image {info["img_path"]} is '
        f'{width}x{height}: a label map must have the '
        'size of its image, pixel for pixel (resizing it would put labels on '
        'pixels they were not drawn for). Use the label map made for this '
        'image, or remove the pair from the dataset.')


def test_ade_label_size_is_checked_against_the_image_before_its_resize(
        tmp_path):
    """The test pipelines resize the image before loading the labels: the
    map is compared with the image as decoded."""
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations, Resize

    from mmtinyvim.datasets.ade import CheckedADE20KDataset, LabelMapError
    root = gen.make_demo_data('ade', tmp_path, 1, 2, 64, seed=0)
    dataset = CheckedADE20KDataset(
        data_root=str(root),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[LoadImageFromFile(), Resize(scale=(32, 32),
                                              keep_ratio=True),
                  LoadAnnotations(reduce_zero_label=True)])
    info = dataset.get_data_info(1)
    height, width = cv2.imread(info['img_path']).shape[:2]
    assert dataset[0]['img_shape'] != dataset[0]['ori_shape']
    _resize_label(info['seg_map_path'], width // 2, height // 2)
    with pytest.raises(LabelMapError, match=f'is {width // 2}x{height // 2} '
                       rf'\(width x height\) .* is {width}x{height}:'):
        dataset[1]


# ------------------------------------------- COCO without categories --

@pytest.mark.parametrize('categories', [None, []])
def test_coco_file_without_categories_is_one_clear_error(roots, tmp_path,
                                                         categories):
    from mmtinyvim.datasets.checks import AnnotationFileError
    source = roots[1]['coco'] / 'annotations' / 'instances_train2017.json'
    content = json.loads(source.read_text())
    if categories is None:
        del content['categories']
    else:
        content['categories'] = categories
    path = tmp_path / 'no_categories.json'
    path.write_text(json.dumps(content))
    from mmcv.transforms import LoadImageFromFile

    from mmtinyvim.datasets.coco import CheckedCocoDataset
    with pytest.raises(AnnotationFileError) as err:
        CheckedCocoDataset(
            data_root=str(tmp_path), ann_file=path.name,
            data_prefix=dict(img=str(roots[1]['coco'] / 'train2017') + '/'),
            pipeline=[LoadImageFromFile()])
    print(f'\n{err.value}')
    what = 'has no "categories" list' if categories is None else (
        'has an empty "categories" list')
    assert str(err.value) == (
        f'COCO annotation file {path} {what}: every COCO annotation file '
        'lists its classes as "categories": [{"id": 1, "name": "person"}, '
        '...], and each annotation\'s category_id is one of those ids. Add '
        'the list (the one of the file the annotations were made with).')
