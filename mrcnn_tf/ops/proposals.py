"""Region proposals from RPN outputs: per-level top-k, decoding, clipping, NMS, top-k over all levels.

Shape letters: ``B`` batch, ``N`` anchors of all levels, ``N_l`` anchors of level ``l``, ``P`` proposals kept.
"""
import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops import nms


def _level_candidates(logits, deltas, anchors, pre_nms_topk, image_size, min_size):
    """Best ``pre_nms_topk`` anchors of one level, decoded and clipped: boxes ``[B, k, 4]``, scores ``[B, k]``."""
    k = min(pre_nms_topk, logits.shape[1])
    scores, indices = tf.math.top_k(logits, k=k)  # [B, k]
    boxes = box_ops.decode_boxes(tf.gather(deltas, indices, batch_dims=1), tf.gather(anchors, indices))
    boxes = box_ops.clip_boxes(boxes, image_size, image_size)
    big_enough = (boxes[..., 2] - boxes[..., 0] >= min_size) & (boxes[..., 3] - boxes[..., 1] >= min_size)
    return boxes, tf.where(big_enough, scores, nms.DISABLED_SCORE)


def select_proposals(logits, deltas, anchors, level_counts, pre_nms_topk, post_nms_topk, nms_iou, image_size,
                     min_size):
    """Proposals of each image, best first, as torchvision: NMS runs per level, the top-k over all levels.

    Args:
      logits: ``[B, N]`` float32 objectness logits; deltas: ``[B, N, 4]`` float32.
      anchors: ``[N, 4]`` float32; level_counts: Python list of ``N_l``, in the order of ``N``.
      pre_nms_topk: candidates per level; post_nms_topk: ``P``; nms_iou: Python float.
      image_size: square input side (boxes are clipped to it); min_size: smaller boxes are dropped.
    Returns:
      proposals ``[B, P, 4]`` float32 (zeros for padding) and valid ``[B, P]`` bool; no gradient.
    """
    logits = tf.stop_gradient(tf.cast(logits, tf.float32))
    deltas = tf.stop_gradient(tf.cast(deltas, tf.float32))
    boxes, scores, start = [], [], 0
    for level, count in enumerate(level_counts):
        level_slice = slice(start, start + count)
        b, s = _level_candidates(
            logits[:, level_slice], deltas[:, level_slice], anchors[level_slice], pre_nms_topk, image_size, min_size
        )
        # Shifting each level to its own region of the plane keeps NMS from suppressing across levels.
        boxes.append(b + float(level * (image_size + 1)))
        scores.append(s)
        start += count
    boxes = tf.concat(boxes, axis=1)  # [B, sum k, 4]
    scores = tf.concat(scores, axis=1)
    kept, _, valid = nms.batched_padded_nms(boxes, scores, post_nms_topk, nms_iou)
    level_shift = tf.floor(kept[..., :1] / float(image_size + 1)) * float(image_size + 1)  # [B, P, 1]
    proposals = (kept - level_shift) * tf.cast(valid, tf.float32)[..., None]
    return proposals, valid
