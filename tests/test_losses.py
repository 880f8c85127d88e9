"""Tests for mrcnn_tf/losses.py on tiny hand-made tensors, against NumPy written from the loss definitions.

Shape letters: ``B`` batch, ``N`` anchors, ``S`` sampled RoIs, ``K`` classes, ``M`` mask side.
"""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf import losses


def _np_bce(logits, labels):
    """Binary cross-entropy from the definition: ``-y log p - (1 - y) log(1 - p)``, ``p = sigmoid(logit)``."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    labels = np.asarray(labels, np.float64)
    return -labels * np.log(p) - (1 - labels) * np.log(1 - p)


def _np_smooth_l1(diff, beta):
    diff = np.abs(np.asarray(diff, np.float64))
    if beta == 0:
        return diff
    return np.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)


def _f32(values):
    return np.asarray(values, np.float32)


def test_smooth_l1_by_hand():
    diff = _f32([-0.05, 0.05, 0.1, 0.5, -2.0, 0.0])
    # beta 0.1: |d| < 0.1 -> 0.5 d^2 / 0.1: 0.5 * 0.0025 / 0.1 = 0.0125; |d| >= 0.1 -> |d| - 0.05:
    # 0.1 -> 0.05 (both branches agree there), 0.5 -> 0.45, 2 -> 1.95.
    np.testing.assert_allclose(losses.smooth_l1(diff, 0.1).numpy(), [0.0125, 0.0125, 0.05, 0.45, 1.95, 0.0],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(losses.smooth_l1(diff, 0.0).numpy(), [0.05, 0.05, 0.1, 0.5, 2.0, 0.0], rtol=1e-6)
    # beta 1 (Huber): 0.5 -> 0.5 * 0.25 = 0.125; 2 -> 2 - 0.5 = 1.5.
    np.testing.assert_allclose(losses.smooth_l1(_f32([0.5, -2.0]), 1.0).numpy(), [0.125, 1.5], rtol=1e-6)


def test_rpn_objectness_loss_is_bce_over_sampled_anchors():
    logits = _f32([[2.0, -1.0, 0.5, 3.0], [-2.0, 0.0, 1.0, 4.0]])
    labels = _f32([[1, 0, 1, 0], [0, 1, 1, 1]])
    weights = _f32([[1, 1, 0, 1], [0, 1, 0, 0]])  # 3 sampled anchors in image 0, 1 in image 1
    # Image 0: log(1 + e^-2) = 0.1269, log(1 + e^-1) = 0.3133, log(1 + e^3) = 3.0486 -> 3.4888 / 3 = 1.1629;
    # image 1: log 2 = 0.6931. Per-image normalisation, then the batch mean: (1.1629 + 0.6931) / 2 = 0.9280.
    per_image = (_np_bce(logits, labels) * weights).sum(axis=1) / weights.sum(axis=1)
    expected = per_image.mean()
    np.testing.assert_allclose(expected, 0.9280, atol=1e-4)
    loss = losses.rpn_objectness_loss(logits, labels, weights)
    assert loss.shape == () and loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)


def test_rpn_box_loss_over_positives_divided_by_sampled():
    deltas = _f32([[[0.05, 0.5, -2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.3]]])  # [B=1, N=3, 4]
    targets = np.zeros_like(deltas)
    positive = _f32([[1, 0, 1]])
    weights = _f32([[1, 1, 1]])
    # beta 0.1: anchor 0: 0.0125 + 0.45 + 1.95 + 0 = 2.4125; anchor 2: 0.3 - 0.05 = 0.25; anchor 1 is negative.
    # (2.4125 + 0.25) / 3 sampled = 0.8875.
    loss = losses.rpn_box_loss(deltas, targets, positive, weights, 0.1)
    np.testing.assert_allclose(loss.numpy(), 0.8875, rtol=1e-5)
    # beta 0 is L1: (0.05 + 0.5 + 2 + 0.3) / 3 = 0.95.
    np.testing.assert_allclose(losses.rpn_box_loss(deltas, targets, positive, weights, 0.0).numpy(), 0.95,
                               rtol=1e-5)
    # The difference is what counts, not the deltas: shift both by the same amount.
    np.testing.assert_allclose(losses.rpn_box_loss(deltas + 3.0, targets + 3.0, positive, weights, 0.1).numpy(),
                               0.8875, rtol=1e-5)


def test_classification_loss_is_softmax_ce_over_valid():
    logits = _f32([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, -1.0, 0.0]]])  # [B=1, S=3, K=3]
    classes = np.asarray([[2, 1, 1]], np.int32)
    valid = np.asarray([[True, True, False]])
    # RoI 0: -log(e^3 / (e + e^2 + e^3)) = 0.4076; RoI 1: log 3 = 1.0986; RoI 2 is padding. Mean 0.7531.
    z = logits[0, :2].astype(np.float64)
    ce = np.log(np.exp(z).sum(axis=1)) - z[[0, 1], [2, 1]]
    np.testing.assert_allclose(ce, [0.4076, 1.0986], atol=1e-4)
    loss = losses.classification_loss(logits, classes, valid)
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), ce.mean(), rtol=1e-6)


def test_box_regression_loss_selects_the_gt_class_deltas():
    # K = 3; every class's deltas differ, so picking the wrong class changes the loss.
    deltas = np.zeros((1, 3, 3, 4), np.float32)  # [B, S, K, 4]
    deltas[0, :, 0] = 9.0  # background deltas: never used
    deltas[0, 0, 1] = [0.5, 0.0, 0.0, 0.0]  # RoI 0, class 1 (its class)
    deltas[0, 0, 2] = [7.0, 7.0, 7.0, 7.0]
    deltas[0, 1, 2] = [0.0, -0.05, 0.0, 2.0]  # RoI 1, class 2 (its class)
    deltas[0, 1, 1] = [5.0, 5.0, 5.0, 5.0]
    deltas[0, 2, 1] = [3.0, 3.0, 3.0, 3.0]  # RoI 2: negative (class 0), ignored
    classes = np.asarray([[1, 2, 0]], np.int32)
    targets = np.zeros((1, 3, 4), np.float32)
    positive = np.asarray([[True, True, False]])
    valid = np.asarray([[True, True, True]])
    # beta 0.1: RoI 0: 0.5 - 0.05 = 0.45; RoI 1: 0.0125 + (2 - 0.05) = 1.9625; sum 2.4125 over 3 sampled = 0.80417.
    loss = losses.box_regression_loss(deltas, classes, targets, positive, valid, 0.1)
    np.testing.assert_allclose(loss.numpy(), 2.4125 / 3, rtol=1e-5)
    # beta 0: (0.5 + 0.05 + 2) / 3 = 0.85.
    np.testing.assert_allclose(losses.box_regression_loss(deltas, classes, targets, positive, valid, 0.0).numpy(),
                               0.85, rtol=1e-5)


def test_mask_loss_selects_the_gt_class_channel():
    rng = np.random.default_rng(0)
    mask_logits = rng.normal(0, 2, (2, 3, 4, 4, 3)).astype(np.float32)  # [B=2, S=3, M=4, M=4, K=3]
    targets = (rng.uniform(size=(2, 3, 4, 4)) > 0.5).astype(np.float32)
    classes = np.asarray([[1, 2, 0], [2, 0, 0]], np.int32)
    positive = np.asarray([[True, True, False], [True, False, False]])
    per_roi = [
        _np_bce(mask_logits[b, s, :, :, classes[b, s]], targets[b, s]).mean()
        for b, s in [(0, 0), (0, 1), (1, 0)]
    ]
    loss = losses.mask_loss(mask_logits, classes, targets, positive)
    assert loss.dtype == tf.float32
    # Per image (2 positives in image 0, 1 in image 1), then the batch mean.
    np.testing.assert_allclose(loss.numpy(), (np.mean(per_roi[:2]) + per_roi[2]) / 2, rtol=1e-5)
    # The other channels do not count: scrambling them leaves the loss unchanged.
    scrambled = mask_logits.copy()
    scrambled[0, 0, ..., [0, 2]] = 50.0
    scrambled[1, 0, ..., [0, 1]] = -50.0
    np.testing.assert_allclose(losses.mask_loss(scrambled, classes, targets, positive).numpy(), loss.numpy(),
                               rtol=1e-6)


def test_mask_loss_hand_value():
    # One positive RoI, M = 1, K = 2, class 1: logit 0 on class 1 -> BCE log 2 whatever the target.
    mask_logits = _f32([[[[[5.0, 0.0]]]]])  # [1, 1, 1, 1, 2]
    loss = losses.mask_loss(mask_logits, np.asarray([[1]], np.int32), _f32([[[[1.0]]]]), np.asarray([[True]]))
    np.testing.assert_allclose(loss.numpy(), np.log(2.0), rtol=1e-6)


def test_zero_positives_give_exactly_zero_box_and_mask_losses():
    rng = np.random.default_rng(1)
    deltas = rng.normal(size=(1, 4, 2, 4)).astype(np.float32)
    classes = np.zeros((1, 4), np.int32)
    no_positive = np.zeros((1, 4), bool)
    box = losses.box_regression_loss(deltas, classes, np.zeros((1, 4, 4), np.float32), no_positive,
                                     np.ones((1, 4), bool), 0.1)
    mask = losses.mask_loss(rng.normal(size=(1, 4, 3, 3, 2)).astype(np.float32), classes,
                            np.ones((1, 4, 3, 3), np.float32), no_positive)
    rpn_box = losses.rpn_box_loss(deltas[:, :, 0], np.zeros((1, 4, 4), np.float32), np.zeros((1, 4), np.float32),
                                  np.zeros((1, 4), np.float32), 0.1)
    for loss in (box, mask, rpn_box):
        assert np.isfinite(loss.numpy())
        assert loss.numpy() == 0.0


def test_zero_positives_have_finite_zero_gradients():
    deltas = tf.Variable(tf.ones((1, 2, 2, 4)))
    mask_logits = tf.Variable(tf.ones((1, 2, 3, 3, 2)))
    with tf.GradientTape() as tape:
        total = losses.box_regression_loss(deltas, tf.zeros((1, 2), tf.int32), tf.zeros((1, 2, 4)),
                                           tf.zeros((1, 2), tf.bool), tf.zeros((1, 2), tf.bool), 0.1)
        total += losses.mask_loss(mask_logits, tf.zeros((1, 2), tf.int32), tf.zeros((1, 2, 3, 3)),
                                  tf.zeros((1, 2), tf.bool))
    for grad in tape.gradient(total, [deltas, mask_logits]):
        np.testing.assert_array_equal(tf.convert_to_tensor(grad).numpy(), 0.0)


@pytest.mark.parametrize("name", ["objectness", "rpn_box", "classification", "box", "mask"])
def test_float16_predictions_give_float32_losses(name):
    rng = np.random.default_rng(2)
    classes = np.asarray([[1, 0, 2]], np.int32)
    positive = np.asarray([[True, False, True]])
    valid = np.ones((1, 3), bool)
    rpn_labels, rpn_weights = _f32([[1, 0, 1]]), _f32([[1, 1, 1]])
    calls = {
        "objectness": lambda p: losses.rpn_objectness_loss(p, rpn_labels, rpn_weights),
        "rpn_box": lambda p: losses.rpn_box_loss(p, np.zeros((1, 3, 4), np.float32), rpn_labels, rpn_weights, 0.1),
        "classification": lambda p: losses.classification_loss(p, classes, valid),
        "box": lambda p: losses.box_regression_loss(p, classes, np.zeros((1, 3, 4), np.float32), positive, valid,
                                                    0.1),
        "mask": lambda p: losses.mask_loss(p, classes, np.ones((1, 3, 2, 2), np.float32), positive),
    }
    shapes = {"objectness": (1, 3), "rpn_box": (1, 3, 4), "classification": (1, 3, 3), "box": (1, 3, 3, 4),
              "mask": (1, 3, 2, 2, 3)}
    predictions = rng.normal(size=shapes[name]).astype(np.float16)
    loss16 = calls[name](tf.constant(predictions))
    loss32 = calls[name](tf.constant(predictions.astype(np.float32)))
    assert loss16.dtype == tf.float32
    np.testing.assert_allclose(loss16.numpy(), loss32.numpy(), rtol=1e-6)  # same float16 values, same loss
