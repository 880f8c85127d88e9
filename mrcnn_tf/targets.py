"""Training targets for the RPN and the RoI heads: pure functions of tensors.

Ground truth arrives padded to ``G = max_instances``: boxes ``[B, G, 4]``, classes ``[B, G]`` int32 with ``-1``
for padding (never a positive), masks ``[B, G, H, W]``.

Shape letters: ``B`` batch, ``N`` anchors, ``G`` ground-truth instances, ``P`` proposals, ``S`` sampled RoIs,
``M`` mask side, ``H``/``W`` image size.
"""
import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops import matching
from mrcnn_tf.ops import roi_align as roi_ops
from mrcnn_tf.ops import sampling


def rpn_targets(anchors, gt_boxes, gt_classes, positive_iou, negative_iou, num_samples, positive_fraction,
                seed=None):
    """Objectness labels, sample weights and box targets of every anchor.

    Args:
      anchors: ``[N, 4]``; gt_boxes: ``[B, G, 4]``; gt_classes: ``[B, G]`` int32 (-1 = padding).
      positive_iou, negative_iou, num_samples, positive_fraction: matcher and sampler settings.
    Returns:
      labels ``[B, N]`` float32 (1 object, 0 background), weights ``[B, N]`` float32 (1 where sampled),
      positive ``[B, N]`` float32 (1 where sampled and positive), box_targets ``[B, N, 4]`` float32.
    """
    num_anchors = anchors.shape[0]

    def one_image(args):
        boxes, classes = args
        matched, labels, _ = matching.match_boxes_to_ground_truth(
            anchors, boxes, classes >= 0, positive_iou, negative_iou, allow_low_quality=True
        )
        is_positive = labels == matching.POSITIVE
        indices, sampled_positive, valid = sampling.sample_balanced(
            is_positive, labels == matching.NEGATIVE, num_samples, positive_fraction, seed
        )
        weights = sampling.sampled_mask(indices, valid, num_anchors)  # [N]
        positive = sampling.sampled_mask(indices, sampled_positive, num_anchors)
        box_targets = box_ops.encode_boxes(tf.gather(boxes, matched), anchors)  # [N, 4]
        return tf.cast(is_positive, tf.float32), weights, positive, box_targets

    return tf.map_fn(
        one_image,
        (gt_boxes, gt_classes),
        fn_output_signature=(tf.float32, tf.float32, tf.float32, tf.float32),
    )


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, num_samples, positive_fraction, positive_iou,
                negative_iou, box_weights, seed=None):
    """Sample ``S`` RoIs per image among the proposals and the ground-truth boxes, with their targets.

    The ground-truth boxes join the candidates (as in Mask R-CNN) so that the heads see positives from the first
    step. Positives come first in every image's ``S`` samples.

    Args:
      proposals: ``[B, P, 4]``; proposal_valid: ``[B, P]`` bool; gt_boxes ``[B, G, 4]``; gt_classes ``[B, G]``.
      num_samples ``S``, positive_fraction, positive_iou, negative_iou, box_weights: sampler and coder settings.
    Returns:
      dict of ``rois`` ``[B, S, 4]``, ``classes`` ``[B, S]`` int32 (0 for background), ``box_targets``
      ``[B, S, 4]``, ``matched_gt`` ``[B, S]`` int32, ``positive`` ``[B, S]`` bool, ``valid`` ``[B, S]`` bool.
    """

    def one_image(args):
        boxes, valid, image_gt_boxes, image_gt_classes = args
        gt_valid = image_gt_classes >= 0
        candidates = tf.concat([boxes, image_gt_boxes], axis=0)  # [P + G, 4]
        candidate_valid = tf.concat([valid, gt_valid], axis=0)
        matched, labels, _ = matching.match_boxes_to_ground_truth(
            candidates, image_gt_boxes, gt_valid, positive_iou, negative_iou, allow_low_quality=False
        )
        indices, is_positive, sampled_valid = sampling.sample_balanced(
            (labels == matching.POSITIVE) & candidate_valid,
            (labels == matching.NEGATIVE) & candidate_valid,
            num_samples,
            positive_fraction,
            seed,
        )
        rois = tf.gather(candidates, indices)  # [S, 4]
        matched_gt = tf.gather(matched, indices)  # [S]
        classes = tf.where(is_positive, tf.gather(image_gt_classes, matched_gt), 0)
        box_targets = box_ops.encode_boxes(tf.gather(image_gt_boxes, matched_gt), rois, box_weights)
        return rois, classes, box_targets, matched_gt, is_positive, sampled_valid

    rois, classes, box_targets, matched_gt, positive, valid = tf.map_fn(
        one_image,
        (proposals, proposal_valid, gt_boxes, gt_classes),
        fn_output_signature=(tf.float32, tf.int32, tf.float32, tf.int32, tf.bool, tf.bool),
    )
    return {
        "rois": tf.stop_gradient(rois),
        "classes": classes,
        "box_targets": tf.stop_gradient(box_targets),
        "matched_gt": matched_gt,
        "positive": positive,
        "valid": valid,
    }


def mask_targets(gt_masks, rois, matched_gt, mask_size):
    """Binary mask targets ``[B, R, M, M]`` float32: each RoI's ground-truth mask cropped by RoIAlign.

    Args:
      gt_masks: ``[B, G, H, W]`` (any numeric dtype, 0/1); rois: ``[B, R, 4]``; matched_gt: ``[B, R]`` int32.
    The crop is resampled bilinearly with the same half-pixel alignment as the features, then thresholded at 0.5
    (detectron2's choice), so a target pixel is 1 where most of its cell lies inside the instance.
    """
    batch = tf.shape(gt_masks)[0]
    height, width = gt_masks.shape[2], gt_masks.shape[3]
    flat = tf.reshape(tf.cast(gt_masks, tf.float32), [batch, -1, 1])  # [B, G*H*W, 1]
    ones = tf.ones_like(matched_gt)
    crops = roi_ops.roi_align_flat(
        flat, rois - 0.5, ones * height, ones * width, matched_gt * (height * width), mask_size, 2
    )  # [B, R, M, M, 1]
    return tf.stop_gradient(tf.cast(crops[..., 0] >= 0.5, tf.float32))
