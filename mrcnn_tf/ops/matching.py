"""Matching predictions (anchors or proposals) to ground-truth boxes by IoU.

Ground truth is padded to a fixed ``G`` with class ``-1``; a padded box never matches anything.
Shape letters: ``N`` boxes to label, ``G`` ground-truth instances (padded).
"""
import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops

# Match labels.
NEGATIVE = 0
POSITIVE = 1
IGNORE = -1


def match_boxes_to_ground_truth(boxes, gt_boxes, gt_valid, positive_iou, negative_iou, allow_low_quality):
    """Label each of ``boxes`` positive, negative or ignored by its best IoU with a valid ground-truth box.

    Args:
      boxes: ``[N, 4]`` float32.
      gt_boxes: ``[G, 4]`` float32, padded.
      gt_valid: ``[G]`` bool, False for padding.
      positive_iou: best IoU ``>=`` this makes a positive.
      negative_iou: best IoU ``<`` this makes a negative; in between is ignored.
      allow_low_quality: also make positive, for every ground truth, the boxes that have its highest IoU
        (ties included), so every ground truth gets at least its best anchor (Faster R-CNN's rule).
    Returns:
      matched_gt: ``[N]`` int32 index of the ground truth each box regresses to: its best one, except that a
        box promoted by ``allow_low_quality`` follows the ground truth it is best for (0 when there is none).
      labels: ``[N]`` int32 in ``{POSITIVE, NEGATIVE, IGNORE}``.
      max_iou: ``[N]`` float32 best IoU (``-1`` when there is no valid ground truth).
    """
    iou = box_ops.pairwise_iou(boxes, gt_boxes)  # [N, G]
    iou = tf.where(gt_valid[None, :], iou, -1.0)
    max_iou = tf.reduce_max(iou, axis=1)  # [N]; -1 when G has no valid entry
    matched_gt = tf.cast(tf.argmax(iou, axis=1), tf.int32)
    labels = tf.where(max_iou >= positive_iou, POSITIVE, IGNORE)
    labels = tf.where(max_iou < negative_iou, NEGATIVE, labels)
    if allow_low_quality:
        best_per_gt = tf.reduce_max(iou, axis=0)  # [G]
        is_best = (iou >= best_per_gt[None, :]) & (iou > 0.0) & gt_valid[None, :]  # [N, G]
        best_gt_of_box = tf.cast(tf.argmax(tf.cast(is_best, tf.float32) * (iou + 1.0), axis=1), tf.int32)
        has_best = tf.reduce_any(is_best, axis=1)
        labels = tf.where(has_best, POSITIVE, labels)
        # A box that is the best of some ground truth but was matched to another keeps the better match only
        # if that match is itself positive; otherwise it follows the ground truth it is best for.
        matched_gt = tf.where(has_best & (max_iou < positive_iou), best_gt_of_box, matched_gt)
    return matched_gt, tf.cast(labels, tf.int32), max_iou
