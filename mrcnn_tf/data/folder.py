"""Reader of the ``folder`` layout: ``ROOT/images/<stem>.<ext>`` beside ``ROOT/masks/<stem>.<ext>``.

Images are ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff`` or ``.bmp``, of any size, grey or colour; masks are
lossless (``.png``, ``.tif``, ``.tiff``) and of their image's size. A mask is either binary (0 and one other
value, e.g. 0/255), whose 8-connected regions are the instances, as in the LGG data; or instance-labelled (more
than one non-zero value, e.g. 1, 2, 3 or one colour per instance), with one instance per value, even when its
pixels are not connected. Every instance is a tumour. There are no patient ids.
"""
import logging
import os
import re

import numpy as np

from mrcnn_tf.data import instances
from mrcnn_tf.data.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS, read_image, read_rgb_image
from mrcnn_tf.data.items import Item
from mrcnn_tf.errors import DataError

log = logging.getLogger(__name__)

TUMOUR_CLASS = 1


class FolderReader:
    """The ``folder`` format of ``data.readers``: ``images/`` + ``masks/`` with matching stems, one class."""

    format = "folder"
    class_names = ("tumour",)

    def __init__(self, root):
        self.root = root
        self.items = list_pairs(root)

    def read(self, item):
        """``(image [H, W, 3] uint8 RGB, masks [I, H, W] uint8 0/1, classes [I] int32)`` of one item; DataError
        naming the mask when its size differs from the image's."""
        image = read_rgb_image(item.image_path)
        labels = read_mask_labels(item.mask_path)
        if labels.shape != image.shape[:2]:
            raise DataError(f"{item.mask_path}: mask size {labels.shape} differs from its image's {image.shape[:2]} "
                            f"({item.image_path})")
        masks = labels_to_instances(labels)
        return image, masks, np.full((len(masks),), TUMOUR_CLASS, np.int32)


def list_pairs(root):
    """An :class:`~mrcnn_tf.data.items.Item` (image, mask, patient None) per image under ``root/images``,
    sorted by stem with numbers compared as numbers (``slice_2`` before ``slice_10``).

    Raises DataError naming the folder when ``images/`` or ``masks/`` is missing or ``images/`` holds no image,
    and naming the image and the expected mask path when an image has no mask.
    """
    images_dir, masks_dir = os.path.join(root, "images"), os.path.join(root, "masks")
    for folder in (images_dir, masks_dir):
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: folder not found (the folder format is ROOT/images + ROOT/masks)")
    images = _files_by_stem(images_dir, IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"{images_dir}: no image files (expected <stem> + one of {', '.join(IMAGE_EXTENSIONS)})")
    masks = _files_by_stem(masks_dir, MASK_EXTENSIONS)
    items = []
    for stem in sorted(images, key=_natural_key):
        if stem not in masks:
            expected = os.path.join(masks_dir, stem)
            raise DataError(f"{images[stem]}: no mask file (expected {expected}.png, .tif or .tiff)")
        items.append(Item(images[stem], masks[stem]))
    unused = sorted(set(masks) - set(images))
    if unused:
        log.warning("%s: %d mask(s) without an image are ignored, e.g. %s", masks_dir, len(unused), masks[unused[0]])
    return items


def _files_by_stem(folder, extensions):
    """``{stem: path}`` of the files of ``folder`` whose extension (any case) is one of ``extensions``."""
    by_stem = {}
    for name in sorted(os.listdir(folder)):
        stem, extension = os.path.splitext(name)
        # Hidden files include macOS's "._<name>" copies, which are not images.
        if name.startswith(".") or extension.lower() not in extensions:
            continue
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if stem in by_stem:
            raise DataError(f"{path}: the stem {stem!r} is also {by_stem[stem]}; expected one file per stem")
        by_stem[stem] = path
    return by_stem


def _natural_key(stem):
    parts = re.split(r"(\d+)", stem)  # text, number, text, ...: same types at the same positions
    return [int(part) if index % 2 else part for index, part in enumerate(parts)], stem


def read_mask_labels(path):
    """A mask file -> ``[H, W]`` labels, 0 = background: the grey values, or one label per colour of a colour
    mask (a grey mask saved as colour keeps its values). DataError naming ``path`` when unreadable."""
    mask = read_image(path)
    if mask.ndim == 2:
        return mask
    mask = mask[..., :3]  # [H, W, 3]; an alpha channel holds no labels
    if (mask == mask[..., :1]).all():
        return mask[..., 0]
    _, labels = np.unique(mask.reshape(-1, 3), axis=0, return_inverse=True)
    labels = labels.reshape(mask.shape[:2]) + 1  # [H, W]
    labels[~mask.any(axis=2)] = 0
    return labels


def labels_to_instances(labels):
    """``[H, W]`` labels -> instance masks ``[I, H, W]`` uint8 0/1.

    One non-zero value: a binary mask, whose 8-connected regions are the instances (largest first). More: an
    instance-labelled mask, one instance per value (in value order). A mask that was resized with
    interpolation or saved lossily has stray values and would be read as many instances: keep masks lossless.
    """
    values = np.unique(labels)
    values = values[values != 0]
    if len(values) <= 1:
        return instances.label_instances(labels)
    return np.stack([(labels == value).astype(np.uint8) for value in values])
