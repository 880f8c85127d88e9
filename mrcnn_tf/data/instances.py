"""From a slice and its mask to model inputs: resizing, instances (8-connected regions), boxes, padding.

A decoded example is a dict of NumPy arrays with static shapes:
``image`` ``[S, S, 3]`` uint8, ``gt_boxes`` ``[G, 4]`` float32 ``[y1, x1, y2, x2]`` (see ``ops.boxes``),
``gt_classes`` ``[G]`` int32 (1 = tumour, -1 = padding), ``gt_masks`` ``[G, S, S]`` uint8 (0/1).
``S`` is the image size, ``G`` the ``max_instances`` padding.
"""
import logging

import cv2
import numpy as np

from mrcnn_tf.errors import DataError

log = logging.getLogger(__name__)


def to_rgb(image, path):
    """``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]`` (RGB(A)) -> ``[H, W, 3]`` uint8.

    uint8 is kept as it is; any other dtype (16 bits, float) is rescaled linearly from its own minimum and maximum
    to 0..255. DataError naming ``path`` for an empty array, another shape, or a NaN or infinite pixel (a float
    image; rescaled, one such pixel would turn the whole image black).
    """
    if image is None or image.size == 0:
        raise DataError(f"{path}: empty or unreadable image")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DataError(f"{path}: expected a grey or colour image, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        _check_finite(image, path)
        image = _rescale_to_uint8(image)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _check_finite(image, path):
    """DataError naming ``path`` when the float ``image`` holds NaN or infinite pixels (integers always pass)."""
    if np.issubdtype(image.dtype, np.inexact):
        bad = image.size - int(np.count_nonzero(np.isfinite(image)))
        if bad:
            raise DataError(f"{path}: {bad} pixel value(s) are NaN or infinite; expected finite intensities")


def _rescale_to_uint8(image):
    image = image.astype(np.float32)
    low, high = float(image.min()), float(image.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return ((image - low) * scale).round().astype(np.uint8)


def label_instances(mask):
    """Each 8-connected region of a binary mask ``[H, W]`` -> instance masks ``[I, H, W]`` uint8, largest first."""
    count, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    instances = [(labels == i).astype(np.uint8) for i in range(1, count)]
    instances.sort(key=lambda m: -int(m.sum()))
    if not instances:
        return np.zeros((0,) + mask.shape, np.uint8)
    return np.stack(instances)


def mask_to_box(mask):
    """Tight box ``[y1, x1, y2, x2]`` (exclusive end) of a non-empty binary mask ``[H, W]``."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def make_example(image, instance_masks, classes, image_size, max_instances, source):
    """Resize an image and its instance masks to ``image_size`` and pad to ``max_instances``.

    Args:
      image: ``[H, W, 3]`` uint8. instance_masks: ``[I, H, W]`` 0/1. classes: ``[I]`` int (>= 1).
      source: the file name, for messages.
    Returns:
      the decoded example dict described in the module docstring. Instances that vanish in the resize are
      dropped; beyond ``max_instances`` the smallest are dropped with a warning.
    """
    height, width = image.shape[:2]
    if instance_masks.shape[1:] != (height, width):
        raise DataError(f"{source}: mask size {instance_masks.shape[1:]} differs from image size {(height, width)}")
    size = (image_size, image_size)
    if (height, width) != size:
        image = cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR)
    boxes = np.zeros((max_instances, 4), np.float32)
    out_classes = np.full((max_instances,), -1, np.int32)
    masks = np.zeros((max_instances,) + size, np.uint8)
    kept = 0
    by_size = np.argsort([-int(np.count_nonzero(m)) for m in instance_masks], kind="stable")
    for mask, label in zip(instance_masks[by_size], np.asarray(classes)[by_size]):
        if mask.shape != size:
            mask = cv2.resize(mask.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST)
        if not mask.any():
            continue
        if kept == max_instances:
            log.warning("%s: more than %d instances; the smallest are dropped", source, max_instances)
            break
        masks[kept] = mask > 0
        boxes[kept] = mask_to_box(mask)
        out_classes[kept] = label
        kept += 1
    return {"image": image, "gt_boxes": boxes, "gt_classes": out_classes, "gt_masks": masks}
