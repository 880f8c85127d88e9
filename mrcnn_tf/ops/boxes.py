"""Box utilities. The one box convention of the package is stated here.

Boxes are ``[y1, x1, y2, x2]`` float32 in absolute pixels of the network input, everywhere inside the model:
``(y1, x1)`` is the top-left corner and ``(y2, x2)`` the bottom-right corner of the box, in continuous pixel
coordinates where pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``. A box around pixels 3..5 (inclusive) of a
mask is therefore ``y1 = 3, y2 = 6``. Conversion to COCO ``[x, y, w, h]`` happens only at the edges (readers and
COCO output).

Shape letters: ``N`` boxes of one set, ``M`` boxes of another, ``...`` any leading dimensions.
"""
import math

import tensorflow as tf

# Largest log-scale change a decoded delta may apply (as torchvision and detectron2): exp(4.135) = 62.5.
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def box_area(boxes):
    """Area of boxes ``[..., 4]`` -> ``[...]``, zero for degenerate boxes."""
    height = tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    width = tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    return height * width


def pairwise_iou(boxes_a, boxes_b):
    """IoU of every box of ``boxes_a`` ``[..., N, 4]`` with every box of ``boxes_b`` ``[..., M, 4]``.

    Returns ``[..., N, M]`` float32; a pair whose union is empty has IoU 0.
    """
    a = boxes_a[..., :, None, :]  # [..., N, 1, 4]
    b = boxes_b[..., None, :, :]  # [..., 1, M, 4]
    top_left = tf.maximum(a[..., :2], b[..., :2])
    bottom_right = tf.minimum(a[..., 2:], b[..., 2:])
    size = tf.maximum(bottom_right - top_left, 0.0)
    intersection = size[..., 0] * size[..., 1]  # [..., N, M]
    union = box_area(a) + box_area(b) - intersection
    return tf.math.divide_no_nan(intersection, union)


def _centre_size(boxes):
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * height, boxes[..., 1] + 0.5 * width, height, width


def encode_boxes(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """Regression targets ``[dy, dx, dh, dw]`` that move ``anchors`` onto ``boxes`` (Faster R-CNN coding).

    Args:
      boxes: ``[..., 4]`` float32 target boxes.
      anchors: ``[..., 4]`` float32 reference boxes of positive size, broadcastable to ``boxes``.
      weights: scale of ``(dy, dx, dh, dw)``: ``(1, 1, 1, 1)`` for the RPN, ``(10, 10, 5, 5)`` for the box head.
    Returns:
      ``[..., 4]`` float32 deltas.
    """
    yc, xc, h, w = _centre_size(boxes)
    ayc, axc, ah, aw = _centre_size(anchors)
    # A padded (all-zero) target box would give log(0); its delta is never used, so keep it finite.
    h = tf.maximum(h, 1e-6)
    w = tf.maximum(w, 1e-6)
    wy, wx, wh, ww = weights
    return tf.stack(
        [wy * (yc - ayc) / ah, wx * (xc - axc) / aw, wh * tf.math.log(h / ah), ww * tf.math.log(w / aw)],
        axis=-1,
    )


def decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """Inverse of :func:`encode_boxes`: apply ``deltas`` ``[..., 4]`` to ``anchors`` ``[..., 4]``.

    The log-scale deltas are clipped at ``MAX_LOG_SCALE`` so that an untrained head cannot overflow.
    Returns ``[..., 4]`` float32 boxes.
    """
    deltas = tf.cast(deltas, tf.float32)
    ayc, axc, ah, aw = _centre_size(anchors)
    wy, wx, wh, ww = weights
    yc = deltas[..., 0] / wy * ah + ayc
    xc = deltas[..., 1] / wx * aw + axc
    h = tf.exp(tf.minimum(deltas[..., 2] / wh, MAX_LOG_SCALE)) * ah
    w = tf.exp(tf.minimum(deltas[..., 3] / ww, MAX_LOG_SCALE)) * aw
    return tf.stack([yc - 0.5 * h, xc - 0.5 * w, yc + 0.5 * h, xc + 0.5 * w], axis=-1)


def clip_boxes(boxes, height, width):
    """Clip ``[..., 4]`` boxes to the image ``[0, height] x [0, width]``."""
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    y1 = tf.clip_by_value(boxes[..., 0], 0.0, height)
    x1 = tf.clip_by_value(boxes[..., 1], 0.0, width)
    y2 = tf.clip_by_value(boxes[..., 2], 0.0, height)
    x2 = tf.clip_by_value(boxes[..., 3], 0.0, width)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def flip_boxes_left_right(boxes, width):
    """``[..., 4]`` boxes of an image ``width`` pixels wide, as boxes of its mirror image (``x -> width - x``)."""
    width = tf.cast(width, tf.float32)
    return tf.stack([boxes[..., 0], width - boxes[..., 3], boxes[..., 2], width - boxes[..., 1]], axis=-1)


def flip_deltas_left_right(deltas):
    """``[..., 4]`` deltas ``[dy, dx, dh, dw]`` regressed in a mirror image, as deltas of the image itself: the
    mirror of a box's regression moves its centre the other way along x."""
    return deltas * tf.constant([1.0, -1.0, 1.0, 1.0], deltas.dtype)


def scale_boxes(boxes, scale_y, scale_x):
    """Multiply the y coordinates of ``[..., 4]`` boxes by ``scale_y`` and the x coordinates by ``scale_x``."""
    scale = tf.stack([scale_y, scale_x, scale_y, scale_x], axis=-1)
    return boxes * tf.cast(scale, tf.float32)


def yxyx_to_xywh(boxes):
    """``[..., 4]`` ``[y1, x1, y2, x2]`` -> COCO ``[x, y, width, height]`` (for output at the edges)."""
    return tf.stack(
        [boxes[..., 1], boxes[..., 0], boxes[..., 3] - boxes[..., 1], boxes[..., 2] - boxes[..., 0]], axis=-1
    )


def xywh_to_yxyx(boxes):
    """COCO ``[x, y, width, height]`` ``[..., 4]`` -> ``[y1, x1, y2, x2]`` (for input at the edges)."""
    return tf.stack(
        [boxes[..., 1], boxes[..., 0], boxes[..., 1] + boxes[..., 3], boxes[..., 0] + boxes[..., 2]], axis=-1
    )
