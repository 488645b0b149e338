"""Write small, learnable stand-ins for COCO, ADE20K and ImageNet.

COCO, ADE20K and ImageNet cannot be downloaded everywhere. This script writes
datasets in exactly their on-disk layouts, so the configs run unchanged, with
content a network can learn in minutes: coloured shapes on plain backgrounds,
each class one shape in one colour family, with exact masks.

    python -m mmtinyvim.datasets.make_demo_data --task all --out-root data

``data/coco``: ``train2017/``, ``val2017/`` (JPEG) and
``annotations/instances_{train,val}2017.json`` listing all 80 COCO categories
with their official ids. Instances are non-overlapping and belong to four of
them: sports ball (orange disc, compressed-RLE mask), tv (blue rectangle),
kite (green diamond) and stop sign (red octagon), polygon masks. Every mask is
the exact set of pixels painted.

``data/ade/ADEChallengeData2016``: ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` holding ADE20K values: 0 is
"other" (ignored under ``reduce_zero_label``), k in 1..150 is class k-1. A sky
over a floor, with ball / painting / tree / lamp shapes on top, and a frame of
0-pixels.

``data/imagenet``: ``train/<wnid>/<wnid>_<n>.JPEG``,
``val/ILSVRC2012_val_<n>.JPEG`` and ``meta/{train,val}.txt`` with labels in
0..999; ten classes (the first ten wnids), each a shape/colour pair.

A directory the script wrote carries a ``DEMO_DATA.txt`` marker; only such a
directory is replaced with ``--overwrite``, real data never is.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

TASKS = ('coco', 'ade', 'imagenet')
PROGRESS_MIN_IMAGES = 32  # fewer images: no progress bar by default
MARKER = 'DEMO_DATA.txt'

# official COCO category ids of the 80 detection classes, in mmdet's order
COCO_CATEGORY_IDS = (
    list(range(1, 12)) + list(range(13, 26)) + [27, 28] +
    list(range(31, 45)) + list(range(46, 66)) + [67, 70] +
    list(range(72, 83)) + list(range(84, 91)))
COCO_SUPERCATEGORIES = (  # (first id, last id, name)
    (1, 1, 'person'), (2, 9, 'vehicle'), (10, 15, 'outdoor'),
    (16, 25, 'animal'), (27, 33, 'accessory'), (34, 43, 'sports'),
    (44, 51, 'kitchen'), (52, 61, 'food'), (62, 70, 'furniture'),
    (72, 77, 'electronic'), (78, 83, 'appliance'), (84, 90, 'indoor'))
# class name -> (shape, BGR colour); the names must be COCO class names
COCO_DEMO_CLASSES = {
    'sports ball': ('disc', (40, 140, 250)),
    'tv': ('rectangle', (200, 80, 30)),
    'kite': ('diamond', (60, 190, 40)),
    'stop sign': ('octagon', (40, 40, 220)),
}
# ADE20K class name -> (shape, BGR colour); background classes sky and floor
ADE_DEMO_CLASSES = {
    'ball': ('disc', (30, 200, 240)),
    'painting': ('rectangle', (150, 40, 150)),
    'tree': ('triangle', (30, 110, 20)),
    'lamp': ('octagon', (230, 230, 40)),
}
ADE_SKY, ADE_FLOOR = 'sky', 'floor'
# the first ten ImageNet-1k classes (label = index), each a shape/colour pair
IMAGENET_DEMO_CLASSES = (
    ('n01440764', 'disc', (40, 140, 250)),
    ('n01443537', 'rectangle', (200, 80, 30)),
    ('n01484850', 'diamond', (60, 190, 40)),
    ('n01491361', 'octagon', (40, 40, 220)),
    ('n01494475', 'triangle', (150, 40, 150)),
    ('n01496331', 'disc', (200, 80, 30)),
    ('n01498041', 'rectangle', (60, 190, 40)),
    ('n01514668', 'diamond', (40, 40, 220)),
    ('n01514859', 'octagon', (40, 140, 250)),
    ('n01518878', 'triangle', (230, 230, 40)),
)


class DemoDataError(RuntimeError):
    """The demo data cannot be written where it was asked to."""


# ---------------------------------------------------------------- shapes --

def shape_polygon(shape: str, cx: float, cy: float, size: float,
                  angle: float) -> List[float]:
    """Flat [x0, y0, x1, y1, ...] outline of a polygonal shape of ``size``
    (circumscribed diameter), rotated by ``angle`` radians."""
    corners = {'rectangle': None, 'diamond': 4, 'octagon': 8,
               'triangle': 3}[shape]
    radius = size / 2
    if corners is None:  # a 4:3 rectangle inscribed in the circle
        half_w, half_h = radius * 0.8, radius * 0.6
        points = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h),
                  (-half_w, half_h)]
    else:
        offset = {4: 0.0, 8: np.pi / 8, 3: -np.pi / 2}[corners]
        points = [(radius * np.cos(offset + 2 * np.pi * k / corners),
                   radius * np.sin(offset + 2 * np.pi * k / corners))
                  for k in range(corners)]
    cos, sin = np.cos(angle), np.sin(angle)
    flat = []
    for x, y in points:
        flat += [float(cx + cos * x - sin * y), float(cy + sin * x + cos * y)]
    return flat


def shape_mask(shape: str, cx: float, cy: float, size: float, angle: float,
               height: int, width: int) -> Tuple[np.ndarray, object]:
    """The exact (H, W) uint8 mask of a shape and its COCO segmentation:
    a compressed RLE for a disc, a polygon for everything else."""
    if shape == 'disc':
        ys, xs = np.mgrid[:height, :width]
        mask = ((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <=
                (size / 2) ** 2).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(mask))
        return mask, {'size': [int(v) for v in rle['size']],
                      'counts': rle['counts'].decode('ascii')}
    # the stored (rounded) outline is the one rasterised
    polygon = [round(v, 2) for v in shape_polygon(shape, cx, cy, size, angle)]
    rle = mask_utils.frPyObjects([polygon], height, width)
    mask = mask_utils.decode(mask_utils.merge(rle))
    return mask.astype(np.uint8), [polygon]


def jitter(rng: np.random.Generator, colour: Sequence[int],
           spread: int = 25) -> np.ndarray:
    return np.clip(np.asarray(colour) + rng.integers(-spread, spread + 1, 3),
                   0, 255)


def plain_background(rng, height, width) -> np.ndarray:
    base = rng.integers(170, 240, 3)
    noise = rng.normal(0, 6, (height, width, 3))
    return np.clip(base + noise, 0, 255)


def paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, rng):
    pixels = mask.astype(bool)
    texture = rng.normal(0, 8, (int(pixels.sum()), 3))
    image[pixels] = np.clip(colour + texture, 0, 255)


def place_shapes(rng, height: int, width: int, count: int,
                 min_frac: float, max_frac: float) -> List[tuple]:
    """Up to ``count`` (cx, cy, size) with disjoint bounding squares."""
    placed = []
    short = min(height, width)
    for _ in range(count * 20):
        if len(placed) == count:
            break
        size = rng.uniform(min_frac, max_frac) * short
        cx = rng.uniform(size / 2 + 1, width - size / 2 - 1)
        cy = rng.uniform(size / 2 + 1, height - size / 2 - 1)
        if all(abs(cx - x) > (size + s) / 2 + 2 or
               abs(cy - y) > (size + s) / 2 + 2 for x, y, s in placed):
            placed.append((cx, cy, size))
    return placed


def image_size(rng, side: int) -> Tuple[int, int]:
    """(height, width): landscape, portrait or square around ``side``."""
    short = side * 3 // 4
    return [(short, side), (side, short), (side, side)][rng.integers(3)]


def write_jpeg(path: Path, image: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image.astype(np.uint8),
                       [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise DemoDataError(f'Could not write image {path}')


# ------------------------------------------------------------------ COCO --

def coco_categories() -> List[Dict]:
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    categories = []
    for cat_id, name in zip(COCO_CATEGORY_IDS, names):
        supercategory = next(n for lo, hi, n in COCO_SUPERCATEGORIES
                             if lo <= cat_id <= hi)
        categories.append(dict(id=cat_id, name=name,
                               supercategory=supercategory))
    return categories


def write_coco_split(root: Path, split: str, num_images: int, side: int,
                     rng: np.random.Generator, first_image_id: int,
                     tick=None):
    categories = coco_categories()
    name_to_id = {c['name']: c['id'] for c in categories}
    classes = list(COCO_DEMO_CLASSES)
    images, annotations = [], []
    for k in range(num_images):
        image_id = first_image_id + k
        height, width = image_size(rng, side)
        image = plain_background(rng, height, width)
        for cx, cy, size in place_shapes(rng, height, width,
                                         int(rng.integers(1, 4)), 0.25, 0.5):
            name = classes[rng.integers(len(classes))]
            shape, colour = COCO_DEMO_CLASSES[name]
            mask, segmentation = shape_mask(shape, cx, cy, size,
                                            rng.uniform(-0.3, 0.3),
                                            height, width)
            paint(image, mask, jitter(rng, colour), rng)
            ys, xs = np.nonzero(mask)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=name_to_id[name], segmentation=segmentation,
                area=int(mask.sum()), iscrowd=0,
                bbox=[int(xs.min()), int(ys.min()),
                      int(xs.max() - xs.min() + 1),
                      int(ys.max() - ys.min() + 1)]))
        file_name = f'{image_id:012d}.jpg'
        write_jpeg(root / f'{split}2017' / file_name, image)
        images.append(dict(id=image_id, file_name=file_name, height=height,
                           width=width, license=1))
        if tick:
            tick()
    ann_dir = root / 'annotations'
    ann_dir.mkdir(parents=True, exist_ok=True)
    content = dict(
        info=dict(description='mmtinyvim demo data in COCO format',
                  version='1.0', year=2024),
        licenses=[dict(id=1, name='CC0', url='')],
        images=images, annotations=annotations, categories=categories)
    with open(ann_dir / f'instances_{split}2017.json', 'w') as f:
        json.dump(content, f)


def write_coco(root: Path, num_train: int, num_val: int, side: int,
               seed: int, tick=None):
    rng = np.random.default_rng(seed)
    write_coco_split(root, 'train', num_train, side, rng, 1, tick)
    write_coco_split(root, 'val', num_val, side, rng, 1_000_001, tick)


# ---------------------------------------------------------------- ADE20K --

def write_ade_split(root: Path, split: str, prefix: str, num_images: int,
                    side: int, rng: np.random.Generator, tick=None):
    from mmseg.datasets import ADE20KDataset
    label_of = {name: k + 1 for k, name in
                enumerate(ADE20KDataset.METAINFO['classes'])}
    classes = list(ADE_DEMO_CLASSES)
    for k in range(1, num_images + 1):
        height, width = image_size(rng, side)
        horizon = int(rng.uniform(0.35, 0.6) * height)
        image = np.empty((height, width, 3))
        label = np.empty((height, width), np.uint8)
        image[:horizon] = jitter(rng, (235, 190, 140), 15)
        image[horizon:] = jitter(rng, (110, 150, 190), 15)
        image += rng.normal(0, 5, image.shape)
        label[:horizon] = label_of[ADE_SKY]
        label[horizon:] = label_of[ADE_FLOOR]
        for cx, cy, size in place_shapes(rng, height, width,
                                         int(rng.integers(1, 4)), 0.2, 0.45):
            name = classes[rng.integers(len(classes))]
            shape, colour = ADE_DEMO_CLASSES[name]
            mask, _ = shape_mask(shape, cx, cy, size, rng.uniform(-0.3, 0.3),
                                 height, width)
            paint(image, mask, jitter(rng, colour), rng)
            label[mask.astype(bool)] = label_of[name]
        label[:2], label[-2:], label[:, :2], label[:, -2:] = 0, 0, 0, 0
        stem = f'ADE_{prefix}_{k:08d}'
        write_jpeg(root / 'images' / split / f'{stem}.jpg', image)
        ann_path = root / 'annotations' / split / f'{stem}.png'
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(ann_path), label):
            raise DemoDataError(f'Could not write label map {ann_path}')
        if tick:
            tick()


def write_ade(root: Path, num_train: int, num_val: int, side: int,
              seed: int, tick=None):
    rng = np.random.default_rng(seed)
    write_ade_split(root, 'training', 'train', num_train, side, rng, tick)
    write_ade_split(root, 'validation', 'val', num_val, side, rng, tick)


# -------------------------------------------------------------- ImageNet --

def imagenet_image(rng, label: int, side: int) -> np.ndarray:
    _, shape, colour = IMAGENET_DEMO_CLASSES[label]
    image = plain_background(rng, side, side)
    size = rng.uniform(0.45, 0.8) * side
    centre = rng.uniform(size / 2, side - size / 2, 2)
    mask, _ = shape_mask(shape, centre[0], centre[1], size,
                         rng.uniform(-0.4, 0.4), side, side)
    paint(image, mask, jitter(rng, colour, 20), rng)
    return image


def write_imagenet(root: Path, num_train: int, num_val: int, side: int,
                   seed: int, tick=None):
    rng = np.random.default_rng(seed)
    num_classes = len(IMAGENET_DEMO_CLASSES)
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(num_train):
        label = k % num_classes
        wnid = IMAGENET_DEMO_CLASSES[label][0]
        name = f'{wnid}/{wnid}_{k // num_classes + 1}.JPEG'
        write_jpeg(root / 'train' / name, imagenet_image(rng, label, side))
        lines.append(f'{name} {label}')
        if tick:
            tick()
    (root / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    lines = []
    for k in range(num_val):
        label = k % num_classes
        name = f'ILSVRC2012_val_{k + 1:08d}.JPEG'
        write_jpeg(root / 'val' / name, imagenet_image(rng, label, side))
        lines.append(f'{name} {label}')
        if tick:
            tick()
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines) + '\n')


# ------------------------------------------------------------------ main --

TASK_LAYOUT = {  # task -> (directory under out-root, writer, default side)
    'coco': ('coco', write_coco, 256),
    'ade': ('ade/ADEChallengeData2016', write_ade, 256),
    'imagenet': ('imagenet', write_imagenet, 96),
}


def progress_ticker(total: int, task: str, show=None):
    """A callable advancing a progress bar (mmengine's, on stderr) over
    ``total`` images; ``None`` (no bar) for ``show=False`` or, with
    ``show=None``, for at most ``PROGRESS_MIN_IMAGES`` images."""
    if show is False or (show is None and total <= PROGRESS_MIN_IMAGES):
        return None
    from mmengine.utils import ProgressBar
    print(f'{task}: writing {total} images', file=sys.stderr)
    bar = ProgressBar(total, file=sys.stderr)

    def tick():
        bar.update()
        if bar.completed == total:
            sys.stderr.write('\n')
    return tick


def make_demo_data(task: str, out_root='data', num_train: int = 64,
                   num_val: int = 16, image_side: int = None, seed: int = 0,
                   overwrite: bool = False, progress=None) -> Path:
    """Write one task's demo dataset; returns its root directory.

    ``progress``: a progress bar on stderr; ``None``: only for more than
    ``PROGRESS_MIN_IMAGES`` images."""
    if task not in TASK_LAYOUT:
        raise ValueError(f'Unknown task {task!r}; valid: {TASKS}')
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1, got '
                         f'{num_train} and {num_val}')
    subdir, writer, default_side = TASK_LAYOUT[task]
    side = image_side or default_side
    if side < 32:
        raise ValueError(f'image_side must be >= 32, got {side}')
    root = Path(out_root) / subdir
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise DemoDataError(
                f'{root} exists and was not written by this script (no '
                f'{MARKER}); it is left untouched. Choose another --out-root.')
        if not overwrite:
            raise DemoDataError(f'{root} already holds demo data; pass '
                                '--overwrite to replace it')
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    writer(root, num_train, num_val, side, seed,
           tick=progress_ticker(num_train + num_val, task, progress))
    (root / MARKER).write_text(
        marker_text(task, num_train, num_val, side, seed))
    return root


def marker_text(task: str, num_train: int, num_val: int, side: int,
                seed: int) -> str:
    """Content of the marker file: what was generated, with which settings."""
    return (f'Synthetic {task} demo data written by mmtinyvim.datasets.'
            f'make_demo_data (train={num_train}, val={num_val}, side={side}, '
            f'seed={seed}). Not the real dataset.\n')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write small synthetic datasets in the COCO, ADE20K and '
        'ImageNet layouts that the configs read.')
    parser.add_argument('--task', choices=TASKS + ('all', ), default='all')
    parser.add_argument('--out-root', default='data',
                        help='creates coco/, ade/ADEChallengeData2016/ and '
                        'imagenet/ under it (default: data)')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--image-side', type=int, default=None,
                        help='longer image side in pixels (default 256 for '
                        'coco/ade, 96 for imagenet)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace demo data written earlier')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress bar (shown on stderr for more '
                        f'than {PROGRESS_MIN_IMAGES} images)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tasks = TASKS if args.task == 'all' else (args.task, )
    for task in tasks:
        try:
            root = make_demo_data(task, args.out_root, args.num_train,
                                  args.num_val, args.image_side, args.seed,
                                  args.overwrite,
                                  progress=False if args.quiet else None)
        except (DemoDataError, ValueError) as err:
            sys.exit(f'error: {err}')
        print(f'{task}: wrote {args.num_train} train / {args.num_val} val '
              f'images to {root}')


if __name__ == '__main__':
    main()
