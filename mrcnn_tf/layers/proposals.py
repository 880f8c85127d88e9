"""Proposal layer: holds the anchors and the proposal counts of training and inference."""
import keras

from mrcnn_tf.ops import anchors as anchor_ops
from mrcnn_tf.ops import proposals as proposal_ops


class ProposalLayer(keras.layers.Layer):
    """RPN outputs -> proposals ``[B, P, 4]`` and valid ``[B, P]``; ``P`` depends on ``training``."""

    def __init__(self, image_size, strides, sizes, aspect_ratios, nms_iou, train_topk, test_topk, min_size,
                 **kwargs):
        # Boxes stay float32 under a mixed policy: no autocast of the inputs.
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.image_size = image_size
        self.anchors, self.level_counts = anchor_ops.multilevel_anchors(image_size, strides, sizes, aspect_ratios)
        self.nms_iou = nms_iou
        self.train_topk = train_topk  # (pre-NMS per level, post-NMS)
        self.test_topk = test_topk
        self.min_size = min_size

    def call(self, logits, deltas, training=False):
        pre_nms, post_nms = self.train_topk if training else self.test_topk
        return proposal_ops.select_proposals(
            logits, deltas, self.anchors, self.level_counts, pre_nms, post_nms, self.nms_iou, self.image_size,
            self.min_size,
        )
