"""Instance masks: pasting fixed-size RoI masks back into the image.

Shape letters: ``B`` batch, ``D`` detections, ``M`` mask side, ``H``/``W`` output image size.
"""
import tensorflow as tf


def _interpolation_matrix(start, end, mask_size, out_size):
    """Bilinear weights ``[B, D, out_size, M]`` from ``M`` mask cells to the pixels of one image axis.

    Output pixel ``i`` (centre ``i + 0.5``) sits at mask coordinate ``(i + 0.5 - start) / (end - start) * M - 0.5``;
    cells outside the mask count as 0 (detectron2's ``grid_sample`` paste, zero padding).
    """
    centres = tf.range(out_size, dtype=tf.float32) + 0.5  # [out]
    length = tf.maximum(end - start, 1e-6)[..., None]  # [B, D, 1]
    coordinate = (centres - start[..., None]) / length * mask_size - 0.5  # [B, D, out]
    cells = tf.range(mask_size, dtype=tf.float32)  # [M]
    return tf.maximum(0.0, 1.0 - tf.abs(coordinate[..., None] - cells))  # [B, D, out, M]


def paste_masks(masks, boxes, height, width):
    """Paste RoI mask probabilities into full images by separable bilinear interpolation.

    Args:
      masks: ``[B, D, M, M]`` float32 probabilities in their box's frame.
      boxes: ``[B, D, 4]`` float32 ``[y1, x1, y2, x2]`` in the output image's pixels.
      height, width: Python ints, the output image size.
    Returns:
      ``[B, D, height, width]`` float32 probabilities (0 outside the box).
    """
    mask_size = masks.shape[-1]
    rows = _interpolation_matrix(boxes[..., 0], boxes[..., 2], mask_size, height)  # [B, D, H, M]
    cols = _interpolation_matrix(boxes[..., 1], boxes[..., 3], mask_size, width)  # [B, D, W, M]
    return tf.matmul(tf.matmul(rows, tf.cast(masks, tf.float32)), cols, transpose_b=True)
