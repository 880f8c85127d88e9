"""COCO files: parsing and validation, segmentation decoding, and the ``coco`` dataset reader.

A COCO file (an annotation tool's export, or ``evaluation.coco``'s ground truth) holds ``images``
(``id``, ``file_name``, ``height``, ``width``), ``categories`` (``id``, ``name``) and ``annotations``
(``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, and a ``segmentation``: polygons, or a run-length
encoding (RLE), uncompressed or compressed). :func:`load_coco_file` and :func:`segmentation_to_mask` are shared by
:class:`CocoReader` (training) and ``evaluation.coco`` (ground truth for COCO AP); every mistake they see raises
DataError naming the file.

Shape letters: ``I`` instances of an image, ``H``/``W`` the image's own height and width.
"""
import dataclasses
import json
import os

import numpy as np
from pycocotools import mask as mask_utils

from mrcnn_tf.data.images import read_rgb_image
from mrcnn_tf.data.items import Item
from mrcnn_tf.errors import DataError

SINGLE_CLASS_NAME = "tumour"


# ---------------------------------------------------------------------------------------------------------------
# COCO files


@dataclasses.dataclass(frozen=True)
class CocoFile:
    """A parsed and validated COCO file.

    ``images``: ``{image id: image dict}`` in file order; ``annotations``: ``{image id: [annotation dict, ...]}``
    for every image (possibly empty lists), in file order; ``categories``: ``{category id: name}``.
    """

    path: str
    images: dict
    annotations: dict
    categories: dict

    def used_category_ids(self, with_crowd=True):
        """Sorted ids of the categories that annotations use; crowd annotations count only if ``with_crowd``."""
        return sorted({annotation["category_id"] for annotations in self.annotations.values()
                       for annotation in annotations if with_crowd or not is_crowd(annotation)})


def load_coco_file(path):
    """Read and validate the COCO file ``path`` into a :class:`CocoFile`.

    Raises DataError naming ``path`` for an unreadable file, invalid JSON, a missing key (of the file, an image,
    an annotation or a category), an annotation of an unknown image or category, and a polygon with fewer than
    3 points. Segmentations are not decoded here (see :func:`segmentation_to_mask`).
    """
    dataset = read_json(path)
    require_keys(path, "the file", dataset, ("images", "annotations", "categories"))
    images = _images_by_id(path, dataset["images"])
    annotations = _annotations_by_image(path, dataset["annotations"], images)
    categories = _category_names(path, dataset["categories"])
    unknown = sorted({annotation["category_id"] for annotation in dataset["annotations"]} - set(categories))
    if unknown:
        raise DataError(f"{path}: annotations use category_id {unknown}, which is not in 'categories'")
    return CocoFile(path=path, images=images, annotations=annotations, categories=categories)


def read_json(path):
    """The parsed content of the JSON file ``path``; DataError naming it when it is unreadable or not JSON."""
    try:
        with open(path) as file:
            return json.load(file)
    except OSError as error:
        raise DataError(f"{path}: cannot read the file: {error}") from error
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise DataError(f"{path}: not valid JSON: {error}") from error


def require_keys(path, what, item, keys):
    """DataError naming ``path`` unless ``item`` is a dict holding every key of ``keys``."""
    if not isinstance(item, dict):
        raise DataError(f"{path}: {what} should be a JSON object with keys {list(keys)}, got {type(item).__name__}")
    missing = [key for key in keys if key not in item]
    if missing:
        raise DataError(f"{path}: {what} lacks {missing}")


def is_crowd(annotation):
    """True for an ``iscrowd`` annotation (a region of many objects); False when the key is absent."""
    return bool(annotation.get("iscrowd", 0))


def has_segmentation(annotation):
    """True when an annotation (or a COCO result) carries a non-empty ``segmentation``."""
    # Box-only exports write "segmentation": [] rather than leaving the key out.
    return bool(annotation.get("segmentation"))


def _images_by_id(path, images):
    """``{image id: image dict}`` in file order, each image checked for ``id``, ``file_name``, ``height``, ``width``."""
    by_id = {}
    for index, image in enumerate(images):
        require_keys(path, f"images[{index}]", image, ("id", "file_name", "height", "width"))
        by_id[image["id"]] = image
    return by_id


def _annotations_by_image(path, annotations, images):
    """``{image id: [annotation dict, ...]}`` for every image; checks keys, image ids and polygon sizes."""
    by_image = {image_id: [] for image_id in images}
    for index, annotation in enumerate(annotations):
        what = f"annotations[{index}]"
        require_keys(path, what, annotation, ("image_id", "category_id", "bbox"))
        if annotation["image_id"] not in by_image:
            raise DataError(f"{path}: {what} refers to image_id {annotation['image_id']!r}, which is not in 'images'")
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, list):
            for polygon in segmentation:
                _check_polygon(path, what, polygon)
        by_image[annotation["image_id"]].append(annotation)
    return by_image


def _check_polygon(path, what, polygon):
    if not isinstance(polygon, list):
        raise DataError(f"{path}: {what} has a segmentation that is not a list of polygons "
                        "([[x1, y1, x2, y2, ...], ...])")
    # pycocotools would read a 4-number polygon as a box, and cannot fill fewer points.
    if len(polygon) < 6:
        raise DataError(f"{path}: {what} has a polygon of {len(polygon) // 2} point(s); "
                        "a polygon needs at least 3 (6 numbers)")


def _category_names(path, categories):
    """``{category id: name}``, each category checked for ``id`` and ``name``."""
    names = {}
    for index, category in enumerate(categories):
        require_keys(path, f"categories[{index}]", category, ("id", "name"))
        names[category["id"]] = category["name"]
    return names


def segmentation_to_mask(path, segmentation, height, width):
    """A COCO polygon list, uncompressed or compressed RLE -> ``[H, W]`` uint8 0/1 mask.

    The decoding of pycocotools' ``COCO.annToMask``, without building a COCO index around it. DataError naming
    ``path`` when an RLE lacks ``size`` or ``counts``, or its size is not the image's ``(height, width)``.
    """
    if isinstance(segmentation, list):  # polygons: one object may have several parts
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        require_keys(path, "an RLE segmentation", segmentation, ("size", "counts"))
        rle = segmentation
    if [int(s) for s in rle["size"]] != [height, width]:
        raise DataError(f"{path}: a mask of size {list(rle['size'])} on an image of size {[height, width]}")
    return mask_utils.decode(rle).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# The dataset reader


class CocoReader:
    """Training data from a COCO file and its images (the ``coco`` format of ``data.readers``).

    Images are looked up relative to the json's folder: ``file_name`` as given, else its base name in that folder
    (exports often keep the tool's own sub-folders in ``file_name``). ``items`` are the file's images in id order,
    without patient ids. ``class_names`` are the categories that some non-crowd annotation uses, as classes
    1..K in category-id order; categories no annotation uses (such as Roboflow's super-category 0) are dropped.
    When exactly one category is used its class is named ``"tumour"`` whatever the file calls it, so a
    one-category export (Roboflow's ``object``) loads as the same single class as the LGG data; a file with no
    (non-crowd) annotation at all also gives the one class ``"tumour"``, so that a model can still be built.

    Crowd annotations (``iscrowd`` 1) are left out of the training instances, as detectron2 does: a crowd region
    covers many objects at once, so as one instance it would teach the model one box and one mask around several
    tumours, and the targets here have no ignore label to make it neither positive nor negative. (Evaluation,
    through ``evaluation.coco``, still treats crowd regions as COCO ignore regions.)

    Raises DataError naming the json when the file is invalid (see :func:`load_coco_file`), or when a non-crowd
    annotation has no segmentation (a mask is what the model learns).
    """

    format = "coco"

    def __init__(self, json_path):
        self.json_path = json_path
        self._file = load_coco_file(json_path)
        used = self._file.used_category_ids(with_crowd=False)
        self._class_of = {category_id: index + 1 for index, category_id in enumerate(used)}
        if len(used) <= 1:
            self.class_names = (SINGLE_CLASS_NAME,)
        else:
            self.class_names = tuple(self._file.categories[category_id] for category_id in used)
        self._instances = {image_id: self._training_annotations(image_id) for image_id in self._file.images}
        folder = os.path.dirname(json_path)  # as the caller spelled it, like the other readers' paths
        self.items = [Item(_image_path(folder, self._file.images[image_id]["file_name"]), image_id=image_id)
                      for image_id in sorted(self._file.images)]

    def _training_annotations(self, image_id):
        """The non-crowd annotations of an image; DataError naming the json when one has no segmentation."""
        annotations = [a for a in self._file.annotations[image_id] if not is_crowd(a)]
        for annotation in annotations:
            if not has_segmentation(annotation):
                raise DataError(f"{self.json_path}: the annotation {annotation.get('id')!r} of image {image_id!r} has "
                                "no segmentation; the coco reader needs a mask for every (non-crowd) annotation")
        return annotations

    def read(self, item):
        """``(image [H, W, 3] uint8 RGB, masks [I, H, W] uint8 0/1, classes [I] int32)`` of one item, in the
        file's annotation order; DataError naming the image when it is missing or not of the json's size."""
        image_info = self._file.images[item.image_id]
        height, width = int(image_info["height"]), int(image_info["width"])
        if not os.path.isfile(item.image_path):
            raise DataError(f"{item.image_path}: image file not found (listed as {image_info['file_name']!r} "
                            f"in {self.json_path})")
        image = read_rgb_image(item.image_path)
        if image.shape[:2] != (height, width):
            raise DataError(f"{item.image_path}: image size {image.shape[:2]} differs from the {(height, width)} "
                            f"that {self.json_path} gives for it")
        annotations = self._instances[item.image_id]
        masks = np.zeros((len(annotations), height, width), np.uint8)  # [I, H, W]
        for index, annotation in enumerate(annotations):
            masks[index] = segmentation_to_mask(self.json_path, annotation["segmentation"], height, width)
        classes = np.array([self._class_of[a["category_id"]] for a in annotations], np.int32)
        return image, masks, classes


def _image_path(folder, file_name):
    """``folder/file_name`` if that file exists, else ``folder/<base name>`` if that one does, else the first."""
    given = os.path.join(folder, file_name)
    if os.path.isfile(given):
        return given
    # Exports made on Windows may write "images\\a.jpg".
    beside = os.path.join(folder, os.path.basename(file_name.replace("\\", "/")))
    return beside if os.path.isfile(beside) else given

