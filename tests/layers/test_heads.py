"""Tests for the Keras layers of mrcnn_tf/layers/: FPN, RPN / box / mask heads and the detection layer.

Shapes for a 64-pixel input with narrow layers; dtypes under the ``mixed_float16`` policy (logits, deltas and
masks stay float32); a NumPy forward pass of the box head; a hand-made decoding case for the detection layer.

Shape letters: ``B`` batch, ``N`` anchors, ``R`` RoIs, ``K`` classes, ``F`` channels, ``D`` detections.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.layers.box_head import BoxHead
from mrcnn_tf.layers.detections import DetectionLayer
from mrcnn_tf.layers.factory import LayerFactory
from mrcnn_tf.layers.fpn import FPN
from mrcnn_tf.layers.mask_head import MaskHead
from mrcnn_tf.layers.proposals import ProposalLayer
from mrcnn_tf.layers.roi_align import MultilevelRoIAlign
from mrcnn_tf.layers.rpn_head import RPNHead
from mrcnn_tf.ops.anchors import multilevel_anchors

IMAGE_SIZE = 64
STRIDES = (4, 8, 16, 32, 64)
SIZES = (4, 8, 16, 32, 64)
RATIOS = (0.5, 1.0, 2.0)
CHANNELS = 16
NUM_CLASSES = 3
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _random(shape, seed=0, dtype=np.float32):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def _pyramid(batch=2, channels=CHANNELS, dtype=np.float32):
    """P2-P6 of a 64-pixel image: sides 16, 8, 4, 2, 1."""
    return [_random((batch, IMAGE_SIZE // s, IMAGE_SIZE // s, channels), seed=i, dtype=dtype)
            for i, s in enumerate(STRIDES)]


# ----------------------------------------------------------------------------------------------------------------
# FPN


@pytest.mark.parametrize("norm", ["frozen_bn", "group_norm"])
def test_fpn_output_shapes(norm):
    backbone = [_random((2, IMAGE_SIZE // s, IMAGE_SIZE // s, c), seed=s) for s, c in zip(STRIDES[:4], (8, 12, 20, 24))]
    outputs = FPN(CHANNELS, LayerFactory(norm, groups=4))(backbone)
    assert [tuple(p.shape) for p in outputs] == [(2, 16, 16, CHANNELS), (2, 8, 8, CHANNELS), (2, 4, 4, CHANNELS),
                                                 (2, 2, 2, CHANNELS), (2, 1, 1, CHANNELS)]  # S/4 .. S/64
    # P6 is P5 subsampled by 2 (a 1 x 1 max-pool of stride 2).
    np.testing.assert_allclose(outputs[4].numpy(), outputs[3].numpy()[:, ::2, ::2], rtol=1e-6)


def test_the_factory_gives_fpn_and_heads_their_norms_and_xla_switches():
    layers = LayerFactory("group_norm", groups=4, xla_conv=True, xla_norm=True)
    fpn, rpn = FPN(CHANNELS, layers), RPNHead(len(RATIOS), CHANNELS, layers)
    mask = MaskHead(NUM_CLASSES, conv_dim=8, layers=layers)
    assert all(conv.xla for conv in list(fpn.lateral) + list(fpn.output_convs)) and rpn.conv.xla
    assert all(norm.xla and norm.groups == 4 for norm in list(fpn.lateral_norms) + list(fpn.output_norms))
    assert [norm.name for norm in fpn.lateral_norms] == ["lateral_c2_gn", "lateral_c3_gn", "lateral_c4_gn",
                                                         "lateral_c5_gn"]
    # The mask head's RoI count changes every step: its layers stay plain (no XLA program per count).
    assert not any(conv.xla for conv in mask.convs) and not any(norm.xla for norm in mask.norms)
    assert [norm.groups for norm in mask.norms] == [4] * 4
    # Frozen BatchNorm (pre-trained weights): FPN and heads without norms, as the original FPN.
    frozen = LayerFactory("frozen_bn")
    assert list(FPN(CHANNELS, frozen).output_norms) == [None] * 4
    assert list(MaskHead(NUM_CLASSES, conv_dim=8, layers=frozen).norms) == [None] * 4


# ----------------------------------------------------------------------------------------------------------------
# RPN head


def test_rpn_head_shapes_match_anchor_counts():
    anchors, counts = multilevel_anchors(IMAGE_SIZE, STRIDES, SIZES, RATIOS)
    num_anchors = anchors.shape[0]  # 3 * (256 + 64 + 16 + 4 + 1) = 1023
    assert num_anchors == sum(counts) == 1023
    logits, deltas = RPNHead(len(RATIOS), CHANNELS)(_pyramid())
    assert tuple(logits.shape) == (2, num_anchors) and tuple(deltas.shape) == (2, num_anchors, 4)
    assert logits.dtype == deltas.dtype == tf.float32


def test_rpn_head_concatenates_levels_in_anchor_order():
    # Changing only P3 must change exactly the anchors of level 3, which follow the 768 anchors of P2.
    _, counts = multilevel_anchors(IMAGE_SIZE, STRIDES, SIZES, RATIOS)
    head = RPNHead(len(RATIOS), CHANNELS)
    features = _pyramid(batch=1)
    logits, deltas = head(features)
    changed = list(features)
    changed[1] = features[1] + 1.0
    logits2, deltas2 = head(changed)
    moved = np.any(np.abs(deltas2.numpy() - deltas.numpy()) > 0, axis=-1)[0] | (logits2.numpy() != logits.numpy())[0]
    start = counts[0]
    expected = np.zeros(sum(counts), bool)
    expected[start:start + counts[1]] = True
    np.testing.assert_array_equal(moved, expected)


def test_rpn_head_matches_its_layers_called_level_by_level():
    # The 1x1 layers run once on all levels' positions: the same values, in the order the per-level layer calls
    # give (image, level, row, column, anchor; deltas' 4 coordinates innermost), and the same gradients.
    head = RPNHead(len(RATIOS), CHANNELS)
    features = _pyramid(batch=2)
    with tf.GradientTape(persistent=True) as tape:
        logits, deltas = head(features, training=True)
        want_logits, want_deltas = [], []
        for x in features:
            x = head.conv(x, training=True)
            want_logits.append(tf.reshape(head.objectness(x), [2, -1]))
            want_deltas.append(tf.reshape(head.deltas(x), [2, -1, 4]))
        want_logits, want_deltas = tf.concat(want_logits, 1), tf.concat(want_deltas, 1)
        weights = tf.random.stateless_normal(deltas.shape, (1, 2))
        loss, want_loss = (tf.reduce_sum(a) + tf.reduce_sum(b * weights)
                           for a, b in ((logits, deltas), (want_logits, want_deltas)))
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(deltas, want_deltas, rtol=1e-5, atol=1e-6)
    variables = head.trainable_variables
    assert len(variables) == 6  # the shared conv's, objectness' and deltas' kernels and biases
    for got, want in zip(tape.gradient(loss, variables), tape.gradient(want_loss, variables)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_rpn_head_under_xla_matches_the_plain_call():
    head = RPNHead(len(RATIOS), CHANNELS)
    features = _pyramid()
    for plain, xla in zip(head(features), head(features, xla=True)):
        np.testing.assert_allclose(xla.numpy(), plain.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="inference"):
        head(features, training=True, xla=True)


# ----------------------------------------------------------------------------------------------------------------
# Box and mask heads


def test_box_head_shapes():
    logits, deltas = BoxHead(NUM_CLASSES, fc_dim=16)(_random((2, 5, 7, 7, 8)))
    assert tuple(logits.shape) == (2, 5, NUM_CLASSES) and tuple(deltas.shape) == (2, 5, NUM_CLASSES, 4)
    assert logits.dtype == deltas.dtype == tf.float32


def test_box_head_matches_numpy_forward():
    # deltas[..., k, :] must be outputs 4k .. 4k + 3 of the delta layer (class-major, as the losses index them).
    head = BoxHead(NUM_CLASSES, fc_dim=16)
    pooled = _random((1, 4, 7, 7, 8), seed=3)
    logits, deltas = head(pooled)
    w1, b1 = head.fc1.get_weights()
    w2, b2 = head.fc2.get_weights()
    x = np.maximum(pooled.numpy().reshape(1, 4, -1) @ w1 + b1, 0.0)
    x = np.maximum(x @ w2 + b2, 0.0)
    wc, bc = head.class_logits.get_weights()
    wd, bd = head.box_deltas.get_weights()
    np.testing.assert_allclose(logits.numpy(), x @ wc + bc, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(deltas.numpy(), (x @ wd + bd).reshape(1, 4, NUM_CLASSES, 4), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("norm", ["frozen_bn", "group_norm"])
def test_mask_head_shapes(norm):
    mask_logits = MaskHead(NUM_CLASSES, conv_dim=8, layers=LayerFactory(norm, groups=4))(_random((2, 3, 14, 14, 8)))
    assert tuple(mask_logits.shape) == (2, 3, 28, 28, NUM_CLASSES)
    assert mask_logits.dtype == tf.float32


def test_mask_head_rois_are_independent():
    # Each RoI's masks depend on its own pooled features only (the [B*R] reshape keeps RoIs apart).
    head = MaskHead(NUM_CLASSES, conv_dim=8)
    pooled = _random((2, 3, 14, 14, 8), seed=5)
    out = head(pooled).numpy()
    changed = pooled.numpy().copy()
    changed[1, 2] += 1.0
    out2 = head(tf.constant(changed)).numpy()
    differs = np.any(out2 != out, axis=(2, 3, 4))
    np.testing.assert_array_equal(differs, [[False, False, False], [False, False, True]])


# ----------------------------------------------------------------------------------------------------------------
# Mixed precision: the heads compute in float16, their outputs are float32.


def test_heads_output_float32_under_mixed_float16(mixed_policy):
    rpn = RPNHead(len(RATIOS), CHANNELS)
    box = BoxHead(NUM_CLASSES, fc_dim=16)
    mask = MaskHead(NUM_CLASSES, conv_dim=8)
    logits, deltas = rpn(_pyramid(dtype=np.float16))  # the FPN outputs float16 under this policy
    class_logits, box_deltas = box(_random((2, 5, 7, 7, 8), dtype=np.float16))
    mask_logits = mask(_random((2, 3, 14, 14, 8), dtype=np.float16))
    assert rpn.conv.compute_dtype == box.fc1.compute_dtype == mask.convs[0].compute_dtype == "float16"
    for output in (logits, deltas, class_logits, box_deltas, mask_logits):
        assert output.dtype == tf.float32
    assert np.all(np.isfinite(mask_logits.numpy())) and np.all(np.isfinite(box_deltas.numpy()))


def test_fpn_computes_in_float16_under_mixed_float16(mixed_policy):
    backbone = [_random((1, IMAGE_SIZE // s, IMAGE_SIZE // s, 8), seed=s) for s in STRIDES[:4]]
    outputs = FPN(CHANNELS, LayerFactory("group_norm", groups=4))(backbone)
    assert [p.dtype for p in outputs] == [tf.float16] * 5


def test_proposal_and_roi_align_layers_run_under_mixed_float16(mixed_policy):
    # The model calls these between the float16 FPN and the float32 heads, so they must accept that mix.
    proposals, valid = ProposalLayer(IMAGE_SIZE, STRIDES, SIZES, RATIOS, 0.7, (50, 20), (50, 10), 1.0)(
        _random((2, 1023), seed=1), _random((2, 1023, 4), seed=2) * 0.1
    )
    assert tuple(proposals.shape) == (2, 10, 4) and proposals.dtype == tf.float32
    features = _pyramid(dtype=np.float16)[:4]
    align = MultilevelRoIAlign(7, 2, 2, 224.0 * IMAGE_SIZE / 800.0)
    pooled = align(features, proposals)
    assert tuple(pooled.shape) == (2, 10, 7, 7, CHANNELS)
    cropped = align(features, proposals, crop=True)  # inference's way: the same values
    assert cropped.dtype == pooled.dtype
    np.testing.assert_allclose(cropped.numpy().astype(np.float32), pooled.numpy().astype(np.float32), atol=1e-2)


def test_roi_align_layer_refuses_crop_under_xla():
    features = _pyramid()[:4]
    with pytest.raises(ValueError, match="crop_and_resize"):
        MultilevelRoIAlign(7, 2, 2, 224.0 * IMAGE_SIZE / 800.0)(features, _random((1, 3, 4)), jit_compile=True,
                                                                crop=True)


# ----------------------------------------------------------------------------------------------------------------
# Detection layer


def _detection_inputs(dtype=np.float32):
    # Proposal 0 [10, 10, 30, 30] (20 x 20): class-1 delta (1, 0, 0, 0) / weights (10, 10, 5, 5) moves the centre
    # by 0.1 * 20 = 2 down -> [12, 10, 32, 30]; class 1 probability e^5 / (1 + e^5 + 1) = 0.9867.
    # Proposal 1 [50, 50, 70, 70] runs past the 64-pixel image: zero deltas, clipped to [50, 50, 64, 64];
    # class 2 probability e^4 / (1 + 1 + e^4) = 0.9647.
    # Proposal 2 is padding (invalid) with a confident class 1: ignored.
    proposals = np.asarray([[[10, 10, 30, 30], [50, 50, 70, 70], [0, 20, 10, 30]]], np.float32)
    valid = np.asarray([[True, True, False]])
    logits = np.asarray([[[0, 5, 0], [0, 0, 4], [0, 9, 0]]], dtype)
    deltas = np.zeros((1, 3, NUM_CLASSES, 4), dtype)
    deltas[0, 0, 1] = [1.0, 0.0, 0.0, 0.0]
    return proposals, valid, logits, deltas


def test_detection_layer_keys_shapes_and_decoding():
    layer = DetectionLayer(IMAGE_SIZE, BOX_WEIGHTS, score_threshold=0.05, nms_iou=0.5, max_detections=4)
    out = {name: value.numpy() for name, value in layer(*_detection_inputs()).items()}
    assert set(out) == {"boxes", "scores", "classes", "valid", "num_detections"}
    assert out["boxes"].shape == (1, 4, 4) and out["boxes"].dtype == np.float32
    assert out["scores"].shape == (1, 4) and out["scores"].dtype == np.float32
    assert out["classes"].shape == (1, 4) and out["classes"].dtype == np.int32
    assert out["valid"].shape == (1, 4) and out["valid"].dtype == bool
    assert out["num_detections"].shape == (1,) and out["num_detections"].dtype == np.int32
    # Above 0.05 in a foreground class: proposal 0 class 1 (0.9867), proposal 1 class 2 (0.9647); the small
    # probabilities e^0 / (2 + e^5) = 0.0066 and 1 / (2 + e^4) = 0.0177 are below the threshold.
    p0 = np.exp(5) / (2 + np.exp(5))
    p1 = np.exp(4) / (2 + np.exp(4))
    np.testing.assert_allclose(out["scores"][0], [p0, p1, 0, 0], rtol=1e-5)
    np.testing.assert_array_equal(out["classes"][0], [1, 2, 0, 0])
    np.testing.assert_allclose(out["boxes"][0], [[12, 10, 32, 30], [50, 50, 64, 64], [0] * 4, [0] * 4], atol=1e-4)
    np.testing.assert_array_equal(out["valid"][0], [True, True, False, False])
    np.testing.assert_array_equal(out["num_detections"], [2])


def test_detection_layer_under_mixed_float16(mixed_policy):
    # Under the model's mixed policy the box head hands float32 logits and deltas to this layer.
    layer = DetectionLayer(IMAGE_SIZE, BOX_WEIGHTS, score_threshold=0.05, nms_iou=0.5, max_detections=4)
    out = layer(*_detection_inputs())
    assert out["boxes"].dtype == out["scores"].dtype == tf.float32
    np.testing.assert_allclose(out["boxes"].numpy()[0, :2], [[12, 10, 32, 30], [50, 50, 64, 64]], atol=0.05)
