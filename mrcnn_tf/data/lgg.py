"""Reader of the LGG / Kaggle ``lgg-mri-segmentation`` layout.

``ROOT/<patient folder>/<name>.tif`` with its mask ``<name>_mask.tif`` beside it; the patient id is the folder
name up to the date (``TCGA_CS_4942_19970222`` -> ``TCGA_CS_4942``). Each 8-connected region of a mask is one
tumour instance; a slice with an empty mask is a tumour-free image.
"""
import csv
import os

import numpy as np

from mrcnn_tf.data import instances
from mrcnn_tf.data.images import read_image, read_rgb_image
from mrcnn_tf.data.items import Item
from mrcnn_tf.errors import DataError

TUMOUR_CLASS = 1
SLICES_CSV = "slices.csv"


class LGGReader:
    """The ``lgg`` format of ``data.readers``: every instance is a tumour."""

    format = "lgg"
    class_names = ("tumour",)

    def __init__(self, root):
        self.items = list_slices(root)

    def read(self, item):
        """``(image [H, W, 3] uint8 RGB, masks [I, H, W] uint8 0/1, classes [I] int32)`` of one slice."""
        image, masks = read_slice(item)
        return image, masks, np.full((len(masks),), TUMOUR_CLASS, np.int32)


def patient_id(folder_name):
    """``TCGA_CS_4942_19970222`` -> ``TCGA_CS_4942`` (a folder without a date suffix is its own id)."""
    parts = folder_name.split("_")
    if len(parts) > 1 and parts[-1].isdigit() and len(parts[-1]) == 8:
        return "_".join(parts[:-1])
    return folder_name


def _slice_order(name):
    stem = name[: -len(".tif")]
    number = stem.rsplit("_", 1)[-1]
    return (stem.rsplit("_", 1)[0], int(number) if number.isdigit() else -1, stem)


def list_slices(root):
    """Every ``(image, mask)`` pair under ``root``: from ``slices.csv`` when present (its row order), else by
    scanning the patient folders (sorted by folder and slice number). The Kaggle download's ``README.md`` and
    ``data.csv`` are ignored.

    Raises DataError naming the file when an image has no mask, and when ``root`` holds no slice at all.
    """
    if not os.path.isdir(root):
        raise DataError(f"{root}: data folder not found")
    if os.path.isfile(os.path.join(root, SLICES_CSV)):
        return _slices_from_csv(root)
    slices = []
    for folder in sorted(os.listdir(root)):
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            continue
        names = [n for n in os.listdir(path) if n.endswith(".tif") and not n.endswith("_mask.tif")]
        for name in sorted(names, key=_slice_order):
            image_path = os.path.join(path, name)
            mask_path = image_path[: -len(".tif")] + "_mask.tif"
            if not os.path.isfile(mask_path):
                raise DataError(f"{image_path}: no mask file (expected {mask_path})")
            slices.append(Item(image_path, mask_path, patient_id(folder)))
    if not slices:
        raise DataError(f"{root}: no '<name>.tif' + '<name>_mask.tif' pairs found in its patient folders")
    return slices


def _slices_from_csv(root):
    path = os.path.join(root, SLICES_CSV)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "mask"} <= set(rows[0]):
        raise DataError(f"{path}: expected a header with 'image' and 'mask' columns and at least one row")
    slices = []
    for row in rows:
        image_path, mask_path = os.path.join(root, row["image"]), os.path.join(root, row["mask"])
        folder = os.path.basename(os.path.dirname(image_path))
        slices.append(Item(image_path, mask_path, patient_id(folder)))
    return slices


def read_slice(item):
    """The image ``[H, W, 3]`` uint8 (RGB, in file channel order) and its instance masks ``[I, H, W]`` uint8 at
    the file's own size, largest instance first."""
    image = read_rgb_image(item.image_path)
    mask = read_image(item.mask_path)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != image.shape[:2]:
        raise DataError(f"{item.mask_path}: mask size {mask.shape} differs from its image's {image.shape[:2]}")
    return image, instances.label_instances(mask)


def load_slice(item, image_size, max_instances):
    """Decode one slice (an :class:`~mrcnn_tf.data.items.Item`) into the example dict of ``data.instances``, at
    the network size."""
    image, masks = read_slice(item)
    classes = np.full((len(masks),), TUMOUR_CLASS, np.int32)
    return instances.make_example(image, masks, classes, image_size, max_instances, item.image_path)
