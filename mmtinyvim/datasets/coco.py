"""mmdet's CocoDataset with clear errors for missing, empty or broken data,
and one report per annotation file of every annotation it drops or
repairs."""
import json
import logging
import math
from collections import Counter, defaultdict
from numbers import Real

from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.logging import print_log

from .checks import (AnnotationFileError, BadImagePolicy, EmptyDatasetError,
                     annotation_json_error, require_paths, require_samples)
from .size_limit import toolbox_check

# the test pipelines' image-size check, with the mmdet limit
TRANSFORMS.register_module(module=toolbox_check('mmdet'))

SHOWN_IDS = 5

# What is wrong with an annotation -> (what happens to it, description).
# Checked in this order; an annotation is counted under its first problem.
ANNOTATION_PROBLEMS = {
    'unknown_category': ('dropped', 'category_id not among the file\'s '
                         '"categories"'),
    'other_category': ('dropped', 'category not one of the dataset\'s '
                       'classes (expected when metainfo selects classes)'),
    'bad_bbox': ('dropped', 'bbox not a list of 4 numbers'),
    'nonfinite_bbox': ('dropped', 'NaN or infinite bbox coordinate'),
    'negative_size': ('dropped', 'negative bbox width or height'),
    'zero_size': ('dropped', 'bbox width or height < 1 px, or area <= 0'),
    'outside': ('dropped', 'bbox outside the image (less than 1 px inside)'),
    'clipped': ('clipped to the image', 'bbox partly outside the image'),
    'short_polygon': ('polygon removed', 'polygon with fewer than 3 points'),
    'odd_polygon': ('polygon removed', 'polygon with an odd number of '
                    'coordinates'),
    'nonfinite_polygon': ('polygon removed', 'polygon with a NaN or infinite '
                          'coordinate'),
}


class DuplicateImageIdError(ValueError):
    """The annotation file lists an image id more than once."""


class ImageSizeMismatchError(ValueError):
    """A decoded image's size differs from the annotation file's."""


class MissingCategoriesError(AnnotationFileError):
    """The annotation file has no (or an empty) ``categories`` list."""


class _CheckedCOCO(COCO):
    """mmdet's COCO API refusing duplicate image ids (pycocotools keeps the
    last image of an id and gives it the annotations of all of them) and a
    file without categories (pycocotools indexes it, then fails with a
    KeyError at the first class lookup), and noting annotations of images
    the file does not list."""

    def createIndex(self):
        categories = self.dataset.get('categories')
        if not categories:
            raise MissingCategoriesError(
                'has no "categories" list' if categories is None else
                'has an empty "categories" list')
        images = self.dataset.get('images', [])
        counts = Counter(img['id'] for img in images)
        duplicates = [i for i, n in counts.items() if n > 1]
        if duplicates:
            files = defaultdict(list)
            for img in images:
                if counts[img['id']] > 1:
                    files[img['id']].append(img.get('file_name'))
            raise DuplicateImageIdError(
                f'image ids listed more than once ({len(duplicates)}): ' +
                '; '.join(f'id {i}: {", ".join(map(str, files[i]))}'
                          for i in duplicates[:SHOWN_IDS]) +
                (f'; ... (+{len(duplicates) - SHOWN_IDS} more)'
                 if len(duplicates) > SHOWN_IDS else ''))
        known = set(counts)
        self.orphan_anns = [ann for ann in self.dataset.get('annotations', [])
                            if ann.get('image_id') not in known]
        super().createIndex()


@TRANSFORMS.register_module()
class CheckImageSize(BaseTransform):
    """Raise :class:`ImageSizeMismatchError` when the decoded image
    (``img_shape``) is not ``height`` x ``width`` of the annotation file.

    :class:`CheckedCocoDataset` puts it after each ``LoadImageFromFile`` of
    its pipeline.
    """

    def transform(self, results):
        if 'height' not in results or 'width' not in results:
            return results
        decoded = tuple(results['img_shape'][:2])
        listed = (results['height'], results['width'])
        if decoded != listed:
            rotated = decoded == listed[::-1]
            raise ImageSizeMismatchError(
                f'Image {results.get("img_path")} decodes to '
                f'{decoded[0]}x{decoded[1]} (height x width) but the '
                f'annotation file gives {listed[0]}x{listed[1]}; its boxes '
                'and masks would not match the pixels. ' +
                ('The sides are swapped: was the image rotated after '
                 'annotation (or saved with its EXIF rotation applied)? '
                 if rotated else '') +
                'Use the image the annotations were made on, or fix its '
                'width/height in the annotation file.')
        return results

    def __repr__(self):
        return f'{type(self).__name__}()'


# flag of mmcv.imfrombytes -> the same flag without EXIF rotation
_IGNORE_ORIENTATION = {'color': 'color_ignore_orientation',
                       'grayscale': 'grayscale_ignore_orientation'}


@DATASETS.register_module()
class CheckedCocoDataset(BadImagePolicy, CocoDataset):
    """``CocoDataset`` that fails early and clearly and reports what it
    changes.

    * a missing annotation file or image directory raises
      ``FileNotFoundError`` naming the path and how to get data there;
    * an annotation file that is not valid JSON raises
      :class:`~mmtinyvim.datasets.checks.AnnotationFileError` naming the
      file, line and column;
    * an image id listed twice raises :class:`DuplicateImageIdError`;
    * a file without a ``categories`` list (or with an empty one) raises
      :class:`MissingCategoriesError`;
    * an annotation file whose ``images`` list is empty, or a training set
      that ``filter_cfg`` empties completely (no image with an annotation
      of the dataset's classes), raises :class:`EmptyDatasetError`; images
      that ``filter_cfg`` drops from a training set are reported in one
      warning with their count and first ids;
    * annotations that mmdet's ``CocoDataset`` drops silently, and those
      repaired here (boxes partly outside the image clipped to it; invalid
      polygons removed), are reported in one warning per annotation file
      with a count and the first ids per kind (:data:`ANNOTATION_PROBLEMS`);
      annotations of an image id the file does not list are counted too.
      Annotations flagged ``"ignore": true`` are skipped as in mmdet,
      without a report;
    * images are decoded without their EXIF orientation (the pixels as
      stored, the frame of the file's ``width``/``height``, boxes and
      masks): each ``LoadImageFromFile`` of the pipeline with
      ``color_type`` 'color' / 'grayscale' gets
      'color_ignore_orientation' / 'grayscale_ignore_orientation', and a
      :class:`CheckImageSize` after it raises when the decoded size is not
      the file's;
    * a missing or undecodable image: see
      :class:`~mmtinyvim.datasets.checks.BadImagePolicy` (skipped with a
      warning in training, an error in evaluation, ``test_mode=True``).

    Args:
        on_bad_image (str, optional): 'skip', 'raise' or None (auto).
        max_bad_in_a_row (int): unreadable training samples tolerated in a
            row. Defaults to 10.

    Everything else, arguments included, is ``CocoDataset``.
    """

    def __init__(self, *args, on_bad_image=None, max_bad_in_a_row=10,
                 **kwargs):
        self._init_bad_image_policy(on_bad_image, max_bad_in_a_row)
        super().__init__(*args, **kwargs)
        self._check_bad_image_policy()
        self._guard_image_loading()

    def _guard_image_loading(self):
        transforms = self.pipeline.transforms
        for index in range(len(transforms) - 1, -1, -1):
            loader = transforms[index]
            if not isinstance(loader, LoadImageFromFile):
                continue
            if loader.imdecode_backend in ('cv2', 'pillow'):
                loader.color_type = _IGNORE_ORIENTATION.get(
                    loader.color_type, loader.color_type)
            following = transforms[index + 1:index + 2]
            if not (following and isinstance(following[0], CheckImageSize)):
                transforms.insert(index + 1, CheckImageSize())

    # ------------------------------------------------------------ loading --

    def _open_coco(self, path):
        self._coco_file = _CheckedCOCO(path)
        return self._coco_file

    def load_data_list(self):
        require_paths('coco', self.data_root, {
            'COCO annotation file': self.ann_file,
            'COCO image directory': self.data_prefix.get('img', ''),
        })
        self.COCOAPI = self._open_coco
        self._problems = defaultdict(list)
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as err:
            raise annotation_json_error(self.ann_file, err) from None
        except DuplicateImageIdError as err:
            raise DuplicateImageIdError(
                f'COCO annotation file {self.ann_file}: {err}. Image ids '
                'must be unique: pycocotools would keep one image of each id '
                'and give it the annotations of all of them.') from None
        except MissingCategoriesError as err:
            raise MissingCategoriesError(
                f'COCO annotation file {self.ann_file} {err}: every COCO '
                'annotation file lists its classes as "categories": [{"id": '
                '1, "name": "person"}, ...], and each annotation\'s '
                'category_id is one of those ids. Add the list (the one of '
                'the file the annotations were made with).') from None
        finally:
            del self.COCOAPI
        coco, self._coco_file = self._coco_file, None
        require_samples(data_list, f'COCO annotation file {self.ann_file}',
                        'image (its "images" list is empty)')
        self._report_annotations(coco, data_list)
        del self._problems
        return data_list

    def parse_data_info(self, raw_data_info):
        img = raw_data_info['raw_img_info']
        kept = []
        for ann in raw_data_info['raw_ann_info']:
            if ann.get('ignore', False):
                kept.append(ann)  # mmdet skips it: an explicit flag
                continue
            ann = self._checked_annotation(ann, img)
            if ann is not None:
                kept.append(ann)
        return super().parse_data_info(
            dict(raw_data_info, raw_ann_info=kept))

    def _note(self, kind, ann):
        self._problems[kind].append((ann.get('id'), ann.get('image_id')))

    def _checked_annotation(self, ann, img):
        """``ann``, a repaired copy of it, or None (dropped); every change
        noted in ``self._problems``."""
        if ann.get('category_id') not in self._coco_file.cats:
            return self._note('unknown_category', ann)
        if ann['category_id'] not in self.cat2label:
            return self._note('other_category', ann)
        bbox = ann.get('bbox')
        if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or
                not all(isinstance(v, Real) and not isinstance(v, bool)
                        for v in bbox)):
            return self._note('bad_bbox', ann)
        if not all(math.isfinite(v) for v in bbox):
            return self._note('nonfinite_bbox', ann)
        x1, y1, w, h = bbox
        if w < 0 or h < 0:
            return self._note('negative_size', ann)
        if w < 1 or h < 1 or ann.get('area', 1) <= 0:
            return self._note('zero_size', ann)
        cx1, cy1 = max(x1, 0), max(y1, 0)
        cx2, cy2 = min(x1 + w, img['width']), min(y1 + h, img['height'])
        if cx2 - cx1 < 1 or cy2 - cy1 < 1:
            return self._note('outside', ann)
        if (cx1, cy1, cx2, cy2) != (x1, y1, x1 + w, y1 + h):
            self._note('clipped', ann)
            ann = dict(ann, bbox=[cx1, cy1, cx2 - cx1, cy2 - cy1])
        segmentation = ann.get('segmentation')
        if isinstance(segmentation, list) and segmentation:
            polygons = []
            for polygon in segmentation:
                kind = _polygon_problem(polygon)
                if kind:
                    self._note(kind, ann)
                else:
                    polygons.append(polygon)
            if len(polygons) < len(segmentation):
                if not polygons:
                    self._problems['no_polygon_left'].append(
                        (ann.get('id'), ann.get('image_id')))
                ann = dict(ann, segmentation=polygons or [[]])
        return ann

    def _report_annotations(self, coco, data_list):
        """One warning for every annotation dropped or repaired."""
        problems = self._problems
        orphans = [(a.get('id'), a.get('image_id'))
                   for a in coco.orphan_anns]
        if not problems and not orphans:
            return
        changed = {ann for kind in ANNOTATION_PROBLEMS
                   for ann, _ in problems[kind]}
        lines = []
        for kind, (action, what) in ANNOTATION_PROBLEMS.items():
            anns = problems[kind]
            if not anns:
                continue
            line = f'  {action}: {len(anns)} ({what}), ' + _first_anns(anns)
            if kind == 'clipped':
                line += ' (mmdet would keep the box unclipped)'
            lines.append(line)
        if problems['no_polygon_left']:
            anns = problems['no_polygon_left']
            lines.append(
                '  no valid polygon left (mask training ignores the '
                "annotation, as mmdet's LoadAnnotations does; box training "
                f'keeps its box): {len(anns)}, ' + _first_anns(anns))
        if orphans:
            lines.append(f'  unused: {len(orphans)} (image_id not among the '
                         'file\'s "images"), ' + _first_anns(orphans))
        dropped_all = sorted({img for kind, (action, _) in
                              ANNOTATION_PROBLEMS.items() if action ==
                              'dropped' for _, img in problems[kind]})
        emptied = [info['img_id'] for info in data_list
                   if info['img_id'] in set(dropped_all)
                   and not info['instances']]
        if emptied:
            lines.append(f'  images left without an annotation: '
                         f'{len(emptied)}, img_id {_first(emptied)}')
        total = len(coco.dataset.get('annotations', []))
        print_log(
            f'COCO annotation file {self.ann_file}: of its {total} '
            f'annotations, {len(changed)} are dropped or repaired while '
            'loading' +
            (f', and {len(orphans)} to no listed image' if orphans
             else '') + ':\n'
            + '\n'.join(lines), logger='current', level=logging.WARNING)

    # ---------------------------------------------------------- filtering --

    def filter_data(self):
        kept = super().filter_data()
        if not kept:
            raise EmptyDatasetError(
                f'filter_cfg={self.filter_cfg} removed all '
                f'{len(self.data_list)} images of {self.ann_file}: none has '
                f'an annotation of the {len(self.metainfo["classes"])} '
                'dataset classes (matched by category name) with both sides '
                '>= min_size.')
        if len(kept) < len(self.data_list):
            self._report_dropped(kept)
        return kept

    def _report_dropped(self, kept):
        """One warning for all images ``filter_cfg`` dropped."""
        kept_ids = {info['img_id'] for info in kept}
        min_size = self.filter_cfg.get('min_size', 0)
        small, unlabelled = [], []
        for info in self.data_list:
            if info['img_id'] in kept_ids:
                continue
            if min(info['width'], info['height']) < min_size:
                small.append(info['img_id'])
            else:
                unlabelled.append(info['img_id'])
        reasons = []
        if unlabelled:
            reasons.append(
                f'{len(unlabelled)} without an annotation of the '
                f'{len(self.metainfo["classes"])} dataset classes '
                f'(filter_empty_gt), img_id {_first(unlabelled)}')
        if small:
            reasons.append(f'{len(small)} with a side < min_size={min_size}, '
                           f'img_id {_first(small)}')
        print_log(
            f'filter_cfg={self.filter_cfg} drops {len(small + unlabelled)} '
            f'of the {len(self.data_list)} training images of '
            f'{self.ann_file}: ' + '; '.join(reasons) + '.',
            logger='current', level=logging.WARNING)


def _polygon_problem(polygon):
    """The ANNOTATION_PROBLEMS kind of an invalid polygon, or None."""
    if not isinstance(polygon, (list, tuple)) or len(polygon) < 6:
        return 'short_polygon'
    if len(polygon) % 2:
        return 'odd_polygon'
    if not all(isinstance(v, Real) and math.isfinite(v) for v in polygon):
        return 'nonfinite_polygon'
    return None


def _first_anns(anns):
    """'ann id 5 (img 1), 6 (img 2), ...' for (ann id, image id) pairs, each
    annotation once."""
    anns = list(dict.fromkeys(anns))
    return 'ann id ' + _first([f'{a} (img {i})' for a, i in anns])


def _first(ids):
    ids = list(ids)
    shown = ', '.join(map(str, ids[:SHOWN_IDS]))
    return shown + (f', ... (+{len(ids) - SHOWN_IDS} more)'
                    if len(ids) > SHOWN_IDS else '')
