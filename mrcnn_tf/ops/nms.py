"""Non-maximum suppression with fixed-size (padded) outputs, for proposals and for final detections.

Shape letters: ``B`` batch, ``N`` candidate boxes per image, ``K`` classes (0 is background), ``D`` detections.
"""
import tensorflow as tf

# Scores at or below this are never kept (candidates disabled by the caller).
DISABLED_SCORE = -1e9


def padded_nms(boxes, scores, max_output, iou_threshold, score_threshold=DISABLED_SCORE):
    """NMS of one image with a static output size.

    Args:
      boxes: ``[N, 4]`` float32; scores: ``[N]`` float32.
      max_output: Python int; iou_threshold: Python float; score_threshold: keep only scores above it.
    Returns:
      indices: ``[max_output]`` int32 into ``boxes``, in decreasing score (padding points at 0).
      valid: ``[max_output]`` bool.
    """
    indices, count = tf.image.non_max_suppression_padded(
        boxes,
        scores,
        max_output,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        pad_to_max_output_size=True,
    )
    return indices, tf.range(max_output) < count


def batched_padded_nms(boxes, scores, max_output, iou_threshold, score_threshold=DISABLED_SCORE):
    """:func:`padded_nms` on each image of ``boxes`` ``[B, N, 4]`` / ``scores`` ``[B, N]``.

    Returns the kept boxes ``[B, max_output, 4]``, scores ``[B, max_output]`` (``DISABLED_SCORE`` for padding)
    and ``valid`` ``[B, max_output]``.
    """

    def one_image(args):
        image_boxes, image_scores = args
        indices, valid = padded_nms(image_boxes, image_scores, max_output, iou_threshold, score_threshold)
        kept_boxes = tf.gather(image_boxes, indices) * tf.cast(valid, tf.float32)[:, None]
        kept_scores = tf.where(valid, tf.gather(image_scores, indices), DISABLED_SCORE)
        return kept_boxes, kept_scores, valid

    return tf.map_fn(
        one_image,
        (boxes, scores),
        fn_output_signature=(
            tf.TensorSpec([max_output, 4], tf.float32),
            tf.TensorSpec([max_output], tf.float32),
            tf.TensorSpec([max_output], tf.bool),
        ),
    )


def per_class_detections(boxes, probs, valid, score_threshold, iou_threshold, max_detections, min_size=0.0):
    """Final detections: per-class NMS over the foreground classes, then the best ``max_detections``.

    Args:
      boxes: ``[B, R, K, 4]`` float32 class-specific boxes.
      probs: ``[B, R, K]`` float32 class probabilities.
      valid: ``[B, R]`` bool, False for padded proposals.
      score_threshold, iou_threshold: Python floats; max_detections: Python int ``D``.
      min_size: Python float; a box lower or narrower than this is dropped before NMS (a box clipped at the
        image edge can have zero area, and so an empty mask).
    Returns:
      dict with ``boxes`` ``[B, D, 4]``, ``scores`` ``[B, D]`` (0 for padding), ``classes`` ``[B, D]`` int32
      (0 for padding), ``valid`` ``[B, D]`` bool and ``num_detections`` ``[B]`` int32; best first.
    """
    num_classes = probs.shape[-1]
    kept_boxes, kept_scores, kept_classes = [], [], []
    sides = boxes[..., 2:] - boxes[..., :2]  # [B, R, K, 2]: height, width
    large_enough = tf.reduce_all(sides >= min_size, axis=-1)  # [B, R, K]
    for k in range(1, num_classes):
        scores = tf.where(valid & large_enough[..., k], probs[..., k], DISABLED_SCORE)
        b, s, _ = batched_padded_nms(boxes[:, :, k], scores, max_detections, iou_threshold, score_threshold)
        kept_boxes.append(b)
        kept_scores.append(s)
        kept_classes.append(tf.fill(tf.shape(s), k))
    all_scores = tf.concat(kept_scores, axis=1)  # [B, (K-1) * D]
    top_scores, top = tf.math.top_k(all_scores, k=max_detections)  # [B, D]
    is_valid = top_scores > score_threshold
    out_boxes = tf.gather(tf.concat(kept_boxes, axis=1), top, batch_dims=1)
    out_classes = tf.gather(tf.concat(kept_classes, axis=1), top, batch_dims=1)
    return {
        "boxes": out_boxes * tf.cast(is_valid, tf.float32)[..., None],
        "scores": tf.where(is_valid, top_scores, 0.0),
        "classes": tf.where(is_valid, out_classes, 0),
        "valid": is_valid,
        "num_detections": tf.reduce_sum(tf.cast(is_valid, tf.int32), axis=1),
    }
