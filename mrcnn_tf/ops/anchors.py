"""Anchor boxes on the FPN levels.

Anchors of all levels are concatenated level by level (P2 first), and within a level in row-major order of the
feature map, with the aspect ratios innermost: index ``((y * W_l) + x) * A + a``. The RPN head flattens its
outputs in the same order, so anchor ``i`` and prediction ``i`` always belong together.

Shape letters: ``A`` anchors per location (aspect ratios), ``N`` anchors of all levels.
"""
import numpy as np
import tensorflow as tf


def cell_anchors(size, aspect_ratios):
    """The ``A`` anchors centred at the origin for one level: ``[A, 4]`` float32 ``[y1, x1, y2, x2]``.

    ``aspect_ratios`` are height / width; every anchor has area ``size ** 2``.
    """
    ratios = np.asarray(aspect_ratios, np.float64)
    heights = size * np.sqrt(ratios)
    widths = size / np.sqrt(ratios)
    return np.stack([-heights / 2, -widths / 2, heights / 2, widths / 2], axis=1).astype(np.float32)


def level_anchors(feature_height, feature_width, stride, size, aspect_ratios):
    """Anchors of one level: ``[feature_height * feature_width * A, 4]`` float32.

    Anchor centres sit at pixel centres of the stride grid: ``(y + 0.5) * stride``.
    """
    ys = (np.arange(feature_height, dtype=np.float32) + 0.5) * stride
    xs = (np.arange(feature_width, dtype=np.float32) + 0.5) * stride
    cy, cx = np.meshgrid(ys, xs, indexing="ij")  # [H, W]
    centres = np.stack([cy, cx, cy, cx], axis=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]
    anchors = centres + cell_anchors(size, aspect_ratios)[None]  # [H*W, A, 4]
    return anchors.reshape(-1, 4)


def multilevel_anchors(image_size, strides, sizes, aspect_ratios):
    """Anchors of all levels for a square ``image_size`` input.

    Args:
      image_size: input side in pixels (a multiple of the largest stride).
      strides: stride of each level, e.g. ``(4, 8, 16, 32, 64)``.
      sizes: anchor side (sqrt of area) of each level.
      aspect_ratios: height / width ratios used on every level.
    Returns:
      anchors: ``[N, 4]`` float32 tf constant.
      counts: list with the number of anchors of each level.
    """
    per_level = [
        level_anchors(image_size // stride, image_size // stride, stride, size, aspect_ratios)
        for stride, size in zip(strides, sizes)
    ]
    return tf.constant(np.concatenate(per_level, axis=0)), [len(a) for a in per_level]
