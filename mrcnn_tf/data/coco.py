"""COCO files: parsing and validation, segmentation decoding, and the ``coco`` dataset reader.

A COCO file (an annotation tool's export, or ``evaluation.coco``'s ground truth) holds ``images``
(``id``, ``file_name``, ``height``, ``width``), ``categories`` (``id``, ``name``) and ``annotations``
(``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, and a ``segmentation``: polygons, or a run-length
encoding (RLE), uncompressed or compressed). :func:`load_coco_file`, :func:`image_size` and
:func:`segmentation_to_mask` are shared by :class:`CocoReader` (training) and ``evaluation.coco`` (ground truth for
COCO AP); every mistake they see raises DataError naming the file.

Mistakes of the file as a whole (invalid JSON, a missing key, a repeated id, a reference to an unknown image or
category) are seen when it is loaded. Mistakes of one image or annotation (its size, its ``file_name``, its
segmentation) are seen when that image is read, so that training's ``--skip-bad`` can leave out the image alone.
Segmentations are validated before pycocotools decodes them: its C code trusts its input, and reads
uninitialised memory for an RLE that is too short and fills a polygon's whole bounding box in memory, however far
away its points are.

Shape letters: ``I`` instances of an image, ``H``/``W`` the image's own height and width.
"""
import dataclasses
import json
import math
import numbers
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
    an annotation or a category), an image or annotation id that is not an integer or that repeats, a
    ``file_name`` that is not a string, and an annotation of an unknown image or category. Image sizes and
    segmentations are checked when they are used (see :func:`image_size` and :func:`segmentation_to_mask`).
    """
    dataset = read_json(path)
    require_keys(path, "the file", dataset, ("images", "annotations", "categories"))
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset[key], list):
            raise DataError(f"{path}: '{key}' should be a JSON list, got {type(dataset[key]).__name__}")
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
    """``{image id: image dict}`` in file order, each image checked for ``id`` (a unique integer), ``file_name`` (a
    string), ``height`` and ``width``."""
    by_id = {}
    for index, image in enumerate(images):
        what = f"images[{index}]"
        require_keys(path, what, image, ("id", "file_name", "height", "width"))
        _require_integer_id(path, what, "id", image["id"])
        if image["id"] in by_id:
            raise DataError(f"{path}: {what} repeats image id {image['id']}; each image needs an id of its own")
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise DataError(f"{path}: {what} (image {image['id']}) has file_name {image['file_name']!r}; "
                            "expected a file name")
        by_id[image["id"]] = image
    return by_id


def _annotations_by_image(path, annotations, images):
    """``{image id: [annotation dict, ...]}`` for every image; checks keys, ids (unique integers when present) and
    image ids."""
    by_image = {image_id: [] for image_id in images}
    seen_ids = set()
    for index, annotation in enumerate(annotations):
        what = f"annotations[{index}]"
        require_keys(path, what, annotation, ("image_id", "category_id", "bbox"))
        if "id" in annotation:
            _require_integer_id(path, what, "id", annotation["id"])
            if annotation["id"] in seen_ids:
                raise DataError(f"{path}: {what} repeats annotation id {annotation['id']}; each annotation needs "
                                "an id of its own")
            seen_ids.add(annotation["id"])
        _require_integer_id(path, what, "image_id", annotation["image_id"])
        _require_integer_id(path, what, "category_id", annotation["category_id"])
        if annotation["image_id"] not in by_image:
            raise DataError(f"{path}: {what} refers to image_id {annotation['image_id']!r}, which is not in 'images'")
        by_image[annotation["image_id"]].append(annotation)
    return by_image


def _require_integer_id(path, what, key, value):
    if not _is_integer(value):
        raise DataError(f"{path}: {what} has {key} {value!r}; COCO ids are integers")


def _is_integer(value):
    """True for an int (not a bool: JSON ``true`` is no number) or a float of integer value, such as ``256.0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer())


def _category_names(path, categories):
    """``{category id: name}``, each category checked for ``id`` and ``name``."""
    names = {}
    for index, category in enumerate(categories):
        require_keys(path, f"categories[{index}]", category, ("id", "name"))
        _require_integer_id(path, f"categories[{index}]", "id", category["id"])
        names[category["id"]] = category["name"]
    return names


def image_size(path, image):
    """``(height, width)`` ints of a COCO image dict; DataError naming ``path`` and the image's id unless both are
    positive integers."""
    for key in ("height", "width"):
        if not _is_integer(image[key]) or image[key] <= 0:
            raise DataError(f"{path}: image {image['id']!r} has {key} {image[key]!r}; expected a positive integer")
    return int(image["height"]), int(image["width"])


def annotation_name(annotation, image_id):
    """How messages name an annotation: ``"annotation 12 of image 7"``."""
    return f"annotation {annotation.get('id')!r} of image {image_id!r}"


def segmentation_to_mask(path, segmentation, height, width, what="a segmentation"):
    """A COCO polygon list, uncompressed or compressed RLE -> ``[H, W]`` uint8 0/1 mask.

    The decoding of pycocotools' ``COCO.annToMask``, without building a COCO index around it, after checking
    what pycocotools would not: polygons of at least 3 points whose coordinates are finite numbers within one
    image side of the image (``-W <= x <= 2 W``, ``-H <= y <= 2 H``); RLE ``size`` the image's ``[height,
    width]``; RLE ``counts`` non-negative integers (uncompressed) or a valid pycocotools string (compressed) whose
    runs cover exactly ``H x W`` pixels. DataError naming ``path`` and ``what`` (the annotation, see
    :func:`annotation_name`) otherwise.
    """
    if isinstance(segmentation, list):  # polygons: one object may have several parts
        _check_polygons(path, what, segmentation, height, width)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        require_keys(path, f"{what}: an RLE segmentation", segmentation, ("size", "counts"))
        _check_rle_size(path, what, segmentation["size"], height, width)
        counts = _rle_counts(path, what, segmentation["counts"], height * width)
        # Decoded from the checked run lengths, never from a string only pycocotools has parsed.
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return mask_utils.decode(rle).astype(np.uint8)


def _check_polygons(path, what, polygons, height, width):
    """DataError unless ``polygons`` are lists of at least 3 ``x, y`` pairs of finite numbers near the image."""
    for polygon in polygons:
        if not isinstance(polygon, list):
            raise DataError(f"{path}: {what} has a segmentation that is not a list of polygons "
                            "([[x1, y1, x2, y2, ...], ...])")
        # pycocotools would read a 4-number polygon as a box, and cannot fill fewer points.
        if len(polygon) < 6 or len(polygon) % 2:
            raise DataError(f"{path}: {what} has a polygon of {len(polygon)} numbers ({len(polygon) // 2} point(s)); "
                            "a polygon needs at least 3 points, as x, y pairs: an even count of 6 numbers or more")
        for index, value in enumerate(polygon):
            axis, side = ("x", width) if index % 2 == 0 else ("y", height)
            is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
            # pycocotools fills a polygon's bounding box in memory: a far point costs gigabytes.
            if not (is_number and math.isfinite(value) and -side <= value <= 2 * side):
                raise DataError(f"{path}: {what} has a polygon point with {axis} = {value!r}; expected a finite "
                                f"number from {-side} to {2 * side} (the image, {side} pixels, and as much "
                                "around it)")


def _check_rle_size(path, what, size, height, width):
    numeric = isinstance(size, list) and len(size) == 2 and all(_is_integer(value) for value in size)
    if not numeric or [int(value) for value in size] != [height, width]:
        raise DataError(f"{path}: {what} has an RLE of size {size!r} on an image of size {[height, width]} "
                        "([height, width])")


def _rle_counts(path, what, counts, pixels):
    """The run lengths (list of int) of an RLE's ``counts``; DataError unless they are valid and sum to ``pixels``."""
    if isinstance(counts, list):  # uncompressed
        if not all(isinstance(count, numbers.Integral) and not isinstance(count, bool) and count >= 0
                   for count in counts):
            raise DataError(f"{path}: {what} has an uncompressed RLE whose counts are not all non-negative integers")
    elif isinstance(counts, (str, bytes)):  # compressed
        counts = _decompress_counts(counts)
        if counts is None or any(count < 0 for count in counts):
            raise DataError(f"{path}: {what} has a compressed RLE whose counts string is not valid (pycocotools' "
                            "encoding)")
    else:
        raise DataError(f"{path}: {what} has RLE counts of type {type(counts).__name__}; expected a list of run "
                        "lengths or a compressed string")
    if sum(counts) != pixels:
        raise DataError(f"{path}: {what} has an RLE whose runs cover {sum(counts)} pixels; the image has "
                        f"{pixels} (height x width)")
    return [int(count) for count in counts]


def _decompress_counts(text):
    """The run lengths of a compressed RLE string, or None when it is malformed.

    pycocotools' ``rleFrString`` in Python: each number is a little-endian run of 5-bit groups, one character
    (``chr(48 + group)``) each, bit 0x20 meaning "more follows" and bit 0x10 of the last group the sign; from the
    fourth number on, the value is a difference to the number two places before.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    counts, value, shift = [], 0, 0
    for character in text:
        group = ord(character) - 48
        if not 0 <= group < 64:
            return None
        value |= (group & 0x1F) << shift
        shift += 5
        if group & 0x20:
            if shift >= 35:  # 7 groups hold any run length pycocotools stores (uint32) and its differences
                return None
            continue
        if group & 0x10:
            value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
        value, shift = 0, 0
    return None if shift else counts  # a string may not end inside a number


# ---------------------------------------------------------------------------------------------------------------
# The dataset reader


class CocoReader:
    """Training data from a COCO file and its images (the ``coco`` format of ``data.readers``).

    Images are looked up relative to the json's folder: ``file_name`` as given, else its base name in that folder
    (exports often keep the tool's own sub-folders in ``file_name``). A ``file_name`` that leads out of that
    folder (``../x.png``, an absolute path elsewhere) is never opened. ``items`` are the file's images in id order,
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
    annotation has no segmentation (a mask is what the model learns). :meth:`read` raises DataError for one
    image's own mistakes, so that ``--skip-bad`` can skip that image alone.
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
        self._folder = os.path.dirname(json_path)  # as the caller spelled it, like the other readers' paths
        self.items = [Item(_image_path(self._folder, self._file.images[image_id]["file_name"]), image_id=image_id)
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
        file's annotation order.

        DataError naming the json and the image id when the image's ``height`` or ``width`` is not a positive
        integer, its ``file_name`` leads out of the json's folder, or a segmentation is invalid (see
        :func:`segmentation_to_mask`, which also names the annotation); DataError naming the image file when it
        is missing, unreadable or not of the json's size.
        """
        image_info = self._file.images[item.image_id]
        height, width = image_size(self.json_path, image_info)
        if not _is_inside(self._folder, item.image_path):
            raise DataError(f"{self.json_path}: image {item.image_id!r} has file_name {image_info['file_name']!r}, "
                            "which leads out of the json's folder; file names must be paths inside it")
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
            masks[index] = segmentation_to_mask(self.json_path, annotation["segmentation"], height, width,
                                                annotation_name(annotation, item.image_id))
        classes = np.array([self._class_of[a["category_id"]] for a in annotations], np.int32)
        return image, masks, classes


def _image_path(folder, file_name):
    """``folder/file_name`` if that file exists, else ``folder/<base name>`` if that one does, else the first.

    A ``file_name`` leading out of ``folder`` is returned as joined, without looking for it or its base name:
    :meth:`CocoReader.read` refuses it.
    """
    given = os.path.join(folder, file_name)
    if not _is_inside(folder, given) or os.path.isfile(given):
        return given
    # Exports made on Windows may write "images\\a.jpg".
    beside = os.path.join(folder, os.path.basename(file_name.replace("\\", "/")))
    return beside if os.path.isfile(beside) else given


def _is_inside(folder, path):
    """Whether ``path`` lies inside ``folder``, by the spelling of both paths.

    Lexically (``normpath``), not through ``realpath``: a symbolic link inside the folder that points elsewhere is
    the user's own choice and is followed; only a ``..`` or an absolute path that leads out is refused.
    """
    root = os.path.normpath(os.path.abspath(folder))
    target = os.path.normpath(os.path.abspath(path))
    return os.path.commonpath([root, target]) == root
