"""Mask R-CNN losses as plain functions: float32 in, float32 scalar out.

Every loss is normalised per image, then averaged over the batch: the loss of a batch is then the mean of its
images' losses, whatever their sample counts, so training on N replicas with a per-replica batch of 1 gives the
same loss and gradients as one device with a batch of N.

Shape letters: ``B`` batch, ``N`` anchors, ``S`` sampled RoIs, ``K`` classes, ``M`` mask side.
"""
import tensorflow as tf


def _per_image_mean(values, weights):
    """``mean_b( sum(values_b * weights_b) / max(sum(weights_b), 1) )`` for ``[B, ...]`` tensors."""
    axes = list(range(1, len(values.shape)))
    total = tf.reduce_sum(values * weights, axis=axes)
    count = tf.reduce_sum(weights, axis=axes)
    return tf.reduce_mean(total / tf.maximum(count, 1.0))


def smooth_l1(diff, beta):
    """Elementwise smooth L1 (Huber with slope 1); ``beta = 0`` gives plain L1."""
    diff = tf.abs(diff)
    if beta == 0:
        return diff
    return tf.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def rpn_objectness_loss(logits, labels, weights):
    """Binary cross-entropy averaged over each image's sampled anchors. ``logits``, ``labels``, ``weights``:
    ``[B, N]``."""
    loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return _per_image_mean(loss, weights)


def rpn_box_loss(deltas, targets, positive, weights, beta):
    """Smooth L1 over the sampled positive anchors, divided by the image's number of sampled anchors (torchvision).

    ``deltas``, ``targets``: ``[B, N, 4]``; ``positive``, ``weights``: ``[B, N]``.
    """
    loss = tf.reduce_sum(smooth_l1(tf.cast(deltas, tf.float32) - targets, beta), axis=-1)  # [B, N]
    return tf.reduce_mean(tf.reduce_sum(loss * positive, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0))


def classification_loss(logits, classes, valid):
    """L_cls: softmax cross-entropy averaged over each image's valid sampled RoIs. ``logits`` ``[B, S, K]``."""
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=tf.cast(logits, tf.float32))
    return _per_image_mean(loss, tf.cast(valid, tf.float32))


def box_regression_loss(deltas, classes, targets, positive, valid, beta):
    """L_box: smooth L1 of the ground-truth class's deltas on positives, over the image's number of sampled RoIs.

    ``deltas`` ``[B, S, K, 4]``, ``classes`` ``[B, S]`` int32, ``targets`` ``[B, S, 4]``, ``positive`` and
    ``valid`` ``[B, S]`` bool.
    """
    class_deltas = tf.gather(tf.cast(deltas, tf.float32), classes, batch_dims=2)  # [B, S, 4]
    loss = tf.reduce_sum(smooth_l1(class_deltas - targets, beta), axis=-1)  # [B, S]
    total = tf.reduce_sum(loss * tf.cast(positive, tf.float32), axis=1)
    return tf.reduce_mean(total / tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32), axis=1), 1.0))


def mask_loss(mask_logits, classes, targets, positive):
    """L_mask: mean per-pixel binary cross-entropy of the ground-truth class's mask, over positive RoIs.

    ``mask_logits`` ``[B, S, M, M, K]``, ``classes`` ``[B, S]`` int32, ``targets`` ``[B, S, M, M]``,
    ``positive`` ``[B, S]`` bool. Zero when an image batch has no positive RoI (a tumour-free slice).
    """
    logits = tf.gather(tf.cast(mask_logits, tf.float32), classes, axis=4, batch_dims=2)  # [B, S, M, M]
    per_roi = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits), axis=[2, 3])
    return _per_image_mean(per_roi, tf.cast(positive, tf.float32))
