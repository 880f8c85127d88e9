"""MaskRCNN: composes backbone, FPN, RPN, RoIAlign and the heads; ``call`` reads like the paper's figure 2.

Inputs are images ``[B, S, S, 3]`` (uint8 or float, 0-255, RGB) at the configured ``image_size``; outputs are in
the pixels of that input (``mrcnn_tf.inference.detect`` maps them back to an image of any size). Boxes follow
``ops.boxes``: ``[y1, x1, y2, x2]`` float32. A training batch is a dict with ``images``, ``gt_boxes``
``[B, G, 4]``, ``gt_classes`` ``[B, G]`` (-1 = padding) and ``gt_masks`` ``[B, G, S, S]``, where ``S`` is
``train.crop_size`` when the model trains on crops (validation batches keep the image size).

Shape letters: ``B`` batch, ``S`` input side, ``G`` ground truth, ``P`` proposals, ``R`` sampled RoIs,
``D`` detections, ``K`` classes, ``M`` mask side.
"""
import keras
import tensorflow as tf

from mrcnn_tf import backbone as backbone_lib
from mrcnn_tf import losses, targets
from mrcnn_tf.layers.box_head import BoxHead
from mrcnn_tf.layers.detections import DetectionLayer
from mrcnn_tf.layers.factory import LayerFactory
from mrcnn_tf.layers.fpn import FPN
from mrcnn_tf.layers.mask_head import MaskHead
from mrcnn_tf.layers.proposals import ProposalLayer
from mrcnn_tf.layers.rpn_head import RPNHead
from mrcnn_tf.layers.roi_align import MultilevelRoIAlign
from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops import masks as mask_ops

LOSS_NAMES = ("rpn_objectness", "rpn_box", "cls", "box", "mask")
ROI_LEVELS = 4  # RoIs pool from P2-P5; P6 only feeds the RPN


class MaskRCNN(keras.Model):
    """Mask R-CNN with a ResNet50-FPN backbone. Build with :func:`build_model` to get weights loaded."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        # The speed policy of the device it runs on, resolved once: switches that change no value.
        self.runtime = config.runtime.resolved(gpu_visible=bool(tf.config.list_physical_devices("GPU")))
        layers = LayerFactory(norm=config.backbone.resolved_norm, groups=config.backbone.group_norm_groups,
                              xla_conv=self.runtime.xla_conv, xla_norm=self.runtime.xla_group_norm)
        anchors, roi = config.anchors, config.roi
        crop = config.train.crop_size if config.train.crop_size != config.image_size else 0
        self.backbone = backbone_lib.build_resnet50(None if crop else config.image_size, layers)
        self.fpn = FPN(config.backbone.fpn_channels, layers, name="fpn")
        self.rpn_head = RPNHead(len(anchors.aspect_ratios), config.backbone.fpn_channels, layers, name="rpn_head")
        self.proposal_layer = self._proposal_layer(config.image_size, "proposals")
        # Training on crops (``train.crop_size``): the anchors and box clipping of the crop's size.
        self.crop_proposal_layer = self._proposal_layer(crop, "crop_proposals") if crop else None
        self.box_roi_align = MultilevelRoIAlign(
            roi.box_pool_size, roi.sampling_ratio, anchors.min_level, config.canonical_roi_size, name="box_roi_align"
        )
        self.mask_roi_align = MultilevelRoIAlign(
            roi.mask_pool_size, roi.sampling_ratio, anchors.min_level, config.canonical_roi_size,
            name="mask_roi_align",
        )
        self.box_head = BoxHead(config.num_classes, roi.fc_dim, name="box_head")
        self.mask_head = MaskHead(config.num_classes, roi.mask_conv_dim, roi.mask_num_convs, layers, name="mask_head")
        inference = config.inference
        self.detection_layer = DetectionLayer(
            config.image_size, roi.box_weights, inference.score_threshold, inference.nms_iou,
            inference.max_detections, inference.min_box_size, name="detections",
        )
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES + ("loss",)}

    # The forward pass of the paper's figure 2.
    def call(self, images, training=False, xla_features=False):
        """Detections of ``images`` ``[B, S, S, 3]``: dict of ``boxes`` ``[B, D, 4]``, ``scores`` ``[B, D]``,
        ``classes`` ``[B, D]``, ``valid`` ``[B, D]``, ``num_detections`` ``[B]``, ``mask_probs`` ``[B, D, M, M]``
        and ``masks`` ``[B, D, S, S]`` uint8 (0/1 at the input size).

        ``xla_features``: backbone + FPN and the RPN head compiled by XLA (``runtime.xla_features``; off by
        default so that exported graphs stay XLA-free). Both RoIAligns pool by crop_and_resize
        (``runtime.crop_roi_align``, unless ``runtime.jit_compile``: then the box one by gather, under XLA with
        ``xla_features``). With ``inference.flip_tta`` the heads also run on the mirror image's features and
        their outputs are averaged (test-time flip, twice the cost)."""
        features = self.extract_features(images, xla=xla_features)  # [P2 .. P6]
        rpn_logits, rpn_deltas = self.rpn_head(features, xla=xla_features)  # [B, N], [B, N, 4]
        proposals, valid = self.proposal_layer(rpn_logits, rpn_deltas, training=False)  # [B, P, 4]
        pooled = self.pool_boxes(features, proposals, xla=xla_features)  # [B, P, 7, 7, F]
        class_logits, box_deltas = self.box_head(pooled)
        flip = self.config.inference.flip_tta
        if flip:  # test-time flip: the mirror image's heads on the mirrored proposals, averaged with these
            mirror = self.extract_features(tf.reverse(images, axis=[2]), xla=xla_features)
            class_logits, box_deltas = self._with_mirror_heads(mirror, proposals, class_logits, box_deltas,
                                                               xla_features)
        detections = self.detection_layer(proposals, valid, class_logits, box_deltas)
        mask_probs = self._mask_probs(features, detections)  # [B, D, M, M]
        if flip:
            mask_probs = 0.5 * (mask_probs + self._mirror_mask_probs(mirror, detections))
        size = self.config.image_size
        pasted = mask_ops.paste_masks(mask_probs, detections["boxes"], size, size)  # [B, D, S, S]
        detections["mask_probs"] = mask_probs
        detections["masks"] = tf.cast(pasted >= self.config.inference.mask_threshold, tf.uint8)
        return detections

    def _proposal_layer(self, size, name):
        anchors, rpn = self.config.anchors, self.config.rpn
        return ProposalLayer(
            size, anchors.strides, anchors.sizes, anchors.aspect_ratios, rpn.nms_iou,
            (rpn.train_pre_nms_topk, rpn.train_post_nms_topk), (rpn.test_pre_nms_topk, rpn.test_post_nms_topk),
            rpn.min_box_size, name=name,
        )

    def proposals_for(self, size):
        """The proposal layer (anchors, clipping) of inputs ``size`` pixels square: the crop's when the model
        trains on crops of that size, else the image's."""
        if self.crop_proposal_layer is not None and size == self.crop_proposal_layer.image_size:
            return self.crop_proposal_layer
        if size not in (None, self.config.image_size):
            raise ValueError(f"inputs of {size} pixels: the model takes {self.config.image_size} (and its training "
                             f"crops of {self.config.train.crop_size}); its anchors are of those sizes")
        return self.proposal_layer

    @property
    def crop_roi_align(self):
        """Whether the box RoIAlign of the losses and both of inference pool by crop_and_resize: not when the whole
        step is compiled by XLA (``runtime.jit_compile``), which cannot compile it."""
        return self.runtime.crop_roi_align and not self.runtime.jit_compile

    def pool_boxes(self, features, rois, xla):
        """Box RoIAlign of ``rois`` ``[B, R, 4]`` from ``[P2 ..]``: ``[B, R, 7, 7, F]``, by crop_and_resize where
        :attr:`crop_roi_align`, otherwise by gather, compiled by XLA when ``xla`` (a fixed ``R``)."""
        crop = self.crop_roi_align
        return self.box_roi_align(features[:ROI_LEVELS], rois, crop=crop, jit_compile=xla and not crop)

    def _mask_probs(self, features, detections):
        """Mask probabilities ``[B, D, M, M]`` of the detections' classes (0 for padding slots).

        Valid detections come first, so the mask head runs on the first ``max(num_detections)`` slots only.
        """
        slots = detections["boxes"].shape[1]
        count = self._head_count(slots, detections["num_detections"])
        boxes, classes = detections["boxes"][:, :count], detections["classes"][:, :count]
        pooled = self.mask_roi_align(features[:ROI_LEVELS], boxes, crop=self.crop_roi_align)  # [B, count, 14, 14, F]
        mask_logits = self.mask_head(pooled)  # [B, count, M, M, K]
        mask_probs = tf.sigmoid(tf.gather(mask_logits, classes, axis=4, batch_dims=2))
        mask_probs *= tf.cast(detections["valid"][:, :count], tf.float32)[..., None, None]
        return tf.pad(mask_probs, [[0, 0], [0, slots - count], [0, 0], [0, 0]])

    def _with_mirror_heads(self, mirror, proposals, class_logits, box_deltas, xla):
        """The box head's outputs averaged with those of the mirror image's features ``mirror`` on the mirrored
        ``proposals`` ``[B, P, 4]``: class probabilities averaged (returned as their log, the logits whose softmax
        they are), deltas ``[B, P, K, 4]`` averaged once mapped back from the mirror."""
        size = self.config.image_size
        mirror_logits, mirror_deltas = self.box_head(
            self.pool_boxes(mirror, box_ops.flip_boxes_left_right(proposals, size), xla=xla))
        probs = 0.5 * (tf.nn.softmax(tf.cast(class_logits, tf.float32), axis=-1)
                       + tf.nn.softmax(tf.cast(mirror_logits, tf.float32), axis=-1))  # [B, P, K]
        deltas = 0.5 * (tf.cast(box_deltas, tf.float32)
                        + box_ops.flip_deltas_left_right(tf.cast(mirror_deltas, tf.float32)))
        return tf.math.log(tf.maximum(probs, 1e-30)), deltas

    def _mirror_mask_probs(self, mirror, detections):
        """Mask probabilities ``[B, D, M, M]`` of ``detections`` from the mirror image's features ``mirror``, mapped
        back (the mirrored box's mask, reversed along x)."""
        mirrored = dict(detections, boxes=box_ops.flip_boxes_left_right(detections["boxes"], self.config.image_size))
        return tf.reverse(self._mask_probs(mirror, mirrored), axis=[3])

    @property
    def mask_roi_slots(self):
        """The leading sampled-RoI slots that may hold a mask-loss RoI: at most ``mask_rois_per_image`` of the
        at most ``batch_size_per_image * positive_fraction`` positives."""
        cfg = self.config.roi
        return min(cfg.mask_rois_per_image, int(cfg.batch_size_per_image * cfg.positive_fraction))

    def _head_count(self, slots, counts):
        """How many of ``slots`` leading RoI slots the mask head runs on, for per-image ``counts`` ``[B]``.

        The mask head costs ~1 GFLOP per RoI forward, so it skips padding: with a dynamic count it runs on the
        largest count of the batch, and on at least one slot (a 1x1 conv of an empty batch fails on oneDNN).
        Under XLA (``runtime.jit_compile``) shapes must be static: all slots.
        """
        if self.runtime.jit_compile:
            return slots
        return tf.clip_by_value(tf.reduce_max(counts), 1, slots)

    def extract_features(self, images, training=False, xla=False):
        """Backbone + FPN: ``[B, S, S, 3]`` 0-255 -> ``[P2, P3, P4, P5, P6]``; ``xla``: inference only, as one
        XLA-compiled function (on CPU XLA's convolutions beat oneDNN's forward, not its gradients)."""
        if xla:
            if training:
                raise ValueError("xla=True is for inference: XLA's convolution gradients are slower on CPU")
            return self._xla_features(images)
        return self.fpn(self.backbone(backbone_lib.preprocess(images), training=training), training=training)

    @tf.function(jit_compile=True)
    def _xla_features(self, images):
        return self.extract_features(images, training=False)

    def compute_losses(self, batch, training=True):
        """The five losses of one batch (dict of float32 scalars) and their sum under ``"loss"``."""
        gt_boxes = tf.cast(batch["gt_boxes"], tf.float32)  # [B, G, 4]
        gt_classes = tf.cast(batch["gt_classes"], tf.int32)  # [B, G]
        size = batch["images"].shape[1]  # static after tf.data: the crop's side when training on crops
        features = self.extract_features(batch["images"], training=training)
        rpn_logits, rpn_deltas = self.rpn_head(features, training=training)
        values = self._rpn_losses(rpn_logits, rpn_deltas, gt_boxes, gt_classes, size)
        rois = self._sample_rois(rpn_logits, rpn_deltas, gt_boxes, gt_classes, size)
        values.update(self._box_losses(features, rois))
        values["mask"] = self._mask_loss(features, rois, batch["gt_masks"], training)
        values["loss"] = tf.add_n([values[name] for name in LOSS_NAMES])
        return values

    def sampled_rois(self, batch):
        """The RoIs a training step of ``batch`` samples for the heads: dict of ``rois`` ``[B, R, 4]``,
        ``classes``, ``matched_gt``, ``positive``, ``valid`` ``[B, R]`` and more (see ``targets.sample_rois``)."""
        features = self.extract_features(batch["images"], training=False)
        rpn_logits, rpn_deltas = self.rpn_head(features)
        gt_boxes, gt_classes = tf.cast(batch["gt_boxes"], tf.float32), tf.cast(batch["gt_classes"], tf.int32)
        return self._sample_rois(rpn_logits, rpn_deltas, gt_boxes, gt_classes, batch["images"].shape[1])

    def _sample_rois(self, rpn_logits, rpn_deltas, gt_boxes, gt_classes, size=None):
        proposals, valid = self.proposals_for(size)(rpn_logits, rpn_deltas, training=True)
        cfg = self.config.roi
        return targets.sample_rois(
            proposals, valid, gt_boxes, gt_classes, cfg.batch_size_per_image, cfg.positive_fraction,
            cfg.positive_iou, cfg.negative_iou, cfg.box_weights,
        )

    def _rpn_losses(self, rpn_logits, rpn_deltas, gt_boxes, gt_classes, size=None):
        cfg = self.config.rpn
        labels, weights, positive, box_targets = targets.rpn_targets(
            self.proposals_for(size).anchors, gt_boxes, gt_classes, cfg.positive_iou, cfg.negative_iou,
            cfg.batch_size_per_image, cfg.positive_fraction,
        )  # [B, N] x 3, [B, N, 4]
        beta = 0.0 if cfg.box_loss == "l1" else cfg.smooth_l1_beta
        return {
            "rpn_objectness": losses.rpn_objectness_loss(rpn_logits, labels, weights),
            "rpn_box": losses.rpn_box_loss(rpn_deltas, box_targets, positive, weights, beta),
        }

    def _box_losses(self, features, rois):
        # A fixed count of sampled RoIs: XLA compiles the RoIAlign's gradient once (``runtime.crop_roi_align``, or
        # the whole RoIAlign: ``runtime.xla_roi_align``). The serving graph (``call``) stays free of XLA, which TF
        # Serving's CPU build does not compile by default.
        pooled = self.pool_boxes(features, rois["rois"], xla=self.runtime.xla_roi_align)  # [B, R, 7, 7, F]
        class_logits, box_deltas = self.box_head(pooled)
        return {
            "cls": losses.classification_loss(class_logits, rois["classes"], rois["valid"]),
            "box": losses.box_regression_loss(box_deltas, rois["classes"], rois["box_targets"], rois["positive"],
                                              rois["valid"], self.config.roi.smooth_l1_beta),
        }

    def _mask_loss(self, features, rois, gt_masks, training=True):
        cfg = self.config.roi
        # Positives come first among the sampled RoIs (in random order), so the first ones suffice.
        count = self._head_count(self.mask_roi_slots, tf.reduce_sum(tf.cast(rois["positive"], tf.int32), axis=1))
        mask_rois = rois["rois"][:, :count]  # [B, R_mask, 4]
        pooled = self.mask_roi_align(features[:ROI_LEVELS], mask_rois)  # [B, R_mask, 14, 14, F]
        mask_logits = self.mask_head(pooled, training=training)  # [B, R_mask, M, M, K]
        mask_target = targets.mask_targets(gt_masks, mask_rois, rois["matched_gt"][:, :count], cfg.mask_size)
        return losses.mask_loss(mask_logits, rois["classes"][:, :count], mask_target, rois["positive"][:, :count])

    # Keras training hooks.
    def train_step(self, batch):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as tape:
            values = self.compute_losses(batch, training=True)
            # Replicas' gradients are summed: each replica's share of the mean loss is 1/replicas of its own.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(values["loss"] / replicas)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        return self._track(values)

    def test_step(self, batch):
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        return self._track(self.compute_losses(batch, training=False))

    def _track(self, values):
        for name, tracker in self.loss_trackers.items():
            tracker.update_state(values[name])
        return {name: tracker.result() for name, tracker in self.loss_trackers.items()}

    @property
    def metrics(self):
        return list(self.loss_trackers.values())


def build_model(config):
    """A built :class:`MaskRCNN` with its backbone weights loaded and frozen as ``config.backbone`` says."""
    model = MaskRCNN(config, name="mask_rcnn")
    size = config.image_size
    model(tf.zeros([1, size, size, 3], tf.uint8))  # create every weight
    weights = config.backbone.weights
    if weights != "none":
        backbone_lib.load_pretrained(model.backbone, weights, size)
        backbone_lib.freeze_stages(model.backbone, config.backbone.freeze_stages)
    return model
