"""Detection layer: box-head outputs -> final boxes, scores and classes (per-class NMS, top-k).

Shape letters: ``B`` batch, ``R`` proposals, ``K`` classes, ``D`` detections.
"""
import keras
import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops import nms


class DetectionLayer(keras.layers.Layer):
    """Decodes class-specific boxes of the proposals and keeps the best ``max_detections`` per image."""

    def __init__(self, image_size, box_weights, score_threshold, nms_iou, max_detections, min_size=0.0, **kwargs):
        # Boxes stay float32 under a mixed policy: no autocast of the inputs.
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.image_size = image_size
        self.box_weights = box_weights
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.min_size = min_size

    def call(self, proposals, proposal_valid, class_logits, box_deltas):
        """``proposals`` ``[B, R, 4]``, logits ``[B, R, K]``, deltas ``[B, R, K, 4]`` -> dict (see ``ops.nms``)."""
        probs = tf.nn.softmax(tf.cast(class_logits, tf.float32), axis=-1)  # [B, R, K]
        boxes = box_ops.decode_boxes(box_deltas, proposals[:, :, None, :], self.box_weights)  # [B, R, K, 4]
        boxes = box_ops.clip_boxes(boxes, self.image_size, self.image_size)
        return nms.per_class_detections(
            boxes, probs, proposal_valid, self.score_threshold, self.nms_iou, self.max_detections, self.min_size
        )
