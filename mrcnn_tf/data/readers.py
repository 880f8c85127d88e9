"""One interface over every dataset format; ``open_dataset`` picks the reader by what it finds at the path.

A reader has ``format`` (its name), ``class_names`` (foreground classes, index 0 = class 1), ``items`` (list of
:class:`~mrcnn_tf.data.items.Item`, in a stable order) and ``read(item) -> (image, masks, classes)``: the image
``[H, W, 3]`` uint8 RGB, instance masks ``[I, H, W]`` uint8 0/1 and classes ``[I]`` int32 (>= 1), all at the
file's own size.
Formats, one module each:

* ``lgg`` (``data.lgg``): patient folders of ``X.tif`` + ``X_mask.tif`` (Kaggle's ``lgg-mri-segmentation``).
* ``coco`` (``data.coco``): a COCO json (an annotation tool's export) and its images.
* ``folder`` (``data.folder``): ``images/`` + ``masks/`` with matching file stems.
"""
import os

from mrcnn_tf.data import instances
from mrcnn_tf.data.coco import CocoReader
from mrcnn_tf.data.folder import FolderReader
from mrcnn_tf.data.lgg import LGGReader
from mrcnn_tf.errors import DataError

FORMATS = ("lgg", "coco", "folder")


def _coco_json_in(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and "coco" in n.lower())
    return os.path.join(folder, names[0]) if len(names) == 1 else None


def detect_format(path):
    """``coco`` for a json file or a folder holding one ``*coco*.json``, ``folder`` for ``images/`` + ``masks/``,
    ``lgg`` otherwise."""
    if os.path.isfile(path) and path.endswith(".json"):
        return "coco"
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such data folder or file")
    if os.path.isdir(os.path.join(path, "images")) and os.path.isdir(os.path.join(path, "masks")):
        return "folder"
    if _coco_json_in(path):
        return "coco"
    return "lgg"


def open_dataset(path, format="auto"):
    """The reader of the dataset at ``path``; ``format`` forces one of :data:`FORMATS`."""
    if format == "auto":
        format = detect_format(path)
    if format == "lgg":
        return LGGReader(path)
    if format == "coco":
        return CocoReader(path if path.endswith(".json") else (_coco_json_in(path) or path))
    if format == "folder":
        return FolderReader(path)
    raise DataError(f"unknown data format {format!r}; expected one of {FORMATS} or 'auto'")


def load_example(reader, item, image_size, max_instances):
    """One item of ``reader`` as the padded, resized example dict of ``data.instances``."""
    image, masks, classes = reader.read(item)
    return instances.make_example(image, masks, classes, image_size, max_instances, item.image_path)
