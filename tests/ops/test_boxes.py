"""Tests for mrcnn_tf/ops/boxes.py on hand-made boxes ``[y1, x1, y2, x2]``; expected values worked out in comments."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.ops import boxes as box_ops

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _f32(values):
    return np.asarray(values, np.float32)


def _random_boxes(rng, count, low=0.0, high=200.0, min_side=1.0, max_side=100.0):
    """``[count, 4]`` float32 boxes of positive size."""
    y1 = rng.uniform(low, high, count)
    x1 = rng.uniform(low, high, count)
    h = rng.uniform(min_side, max_side, count)
    w = rng.uniform(min_side, max_side, count)
    return np.stack([y1, x1, y1 + h, x1 + w], axis=-1).astype(np.float32)


def _anchors_near(rng, boxes):
    """Anchors ``[N, 4]`` around ``boxes``: centres shifted by up to a side, sides scaled by 1/4 .. 4.

    Side ratios stay far below the decode clip e^MAX_LOG_SCALE = 62.5, so a round trip is exact.
    """
    y1, x1, y2, x2 = boxes.T.astype(np.float64)
    h, w = y2 - y1, x2 - x1
    yc = (y1 + y2) / 2 + rng.uniform(-1, 1, len(boxes)) * h
    xc = (x1 + x2) / 2 + rng.uniform(-1, 1, len(boxes)) * w
    ah = h * np.exp(rng.uniform(np.log(0.25), np.log(4.0), len(boxes)))
    aw = w * np.exp(rng.uniform(np.log(0.25), np.log(4.0), len(boxes)))
    return np.stack([yc - ah / 2, xc - aw / 2, yc + ah / 2, xc + aw / 2], axis=-1).astype(np.float32)


def _numpy_iou(a, b):
    """Independent reference: IoU of every box of ``a`` ``[N, 4]`` with every box of ``b`` ``[M, 4]``."""
    out = np.zeros((len(a), len(b)), np.float64)
    for i, (ay1, ax1, ay2, ax2) in enumerate(a.astype(np.float64)):
        for j, (by1, bx1, by2, bx2) in enumerate(b.astype(np.float64)):
            ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
            iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
            inter = ih * iw
            union = max(ay2 - ay1, 0.0) * max(ax2 - ax1, 0.0) + max(by2 - by1, 0.0) * max(bx2 - bx1, 0.0) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


# ---------------------------------------------------------------------------------------------------------------
# box_area and pairwise_iou


def test_box_area_known_and_degenerate():
    boxes = _f32([[0, 0, 10, 20], [5, 5, 5, 9], [4, 4, 2, 8]])
    # 10 * 20 = 200; zero height -> 0; inverted (y2 < y1) -> 0, not negative.
    np.testing.assert_allclose(box_ops.box_area(boxes).numpy(), [200.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "box_a, box_b, expected",
    [
        # Identical: intersection == union.
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        # Disjoint: no intersection.
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        # Shifted by half a side in x: intersection 10 * 5 = 50, union 100 + 100 - 50 = 150 -> 1/3.
        ([0, 0, 10, 10], [0, 5, 10, 15], 1.0 / 3.0),
        # Shifted by half a side in both axes: intersection 5 * 5 = 25, union 200 - 25 = 175 -> 1/7.
        ([0, 0, 10, 10], [5, 5, 15, 15], 1.0 / 7.0),
        # b inside a: intersection 4 * 5 = 20, union 100 -> 0.2.
        ([0, 0, 10, 10], [2, 3, 6, 8], 0.2),
        # Touching edges (x2 of a == x1 of b): intersection of width 0 -> 0.
        ([0, 0, 10, 10], [0, 10, 10, 20], 0.0),
        # Touching corners only.
        ([0, 0, 10, 10], [10, 10, 20, 20], 0.0),
        # Zero-area box inside a: intersection 0, union 100 -> 0.
        ([0, 0, 10, 10], [5, 5, 5, 5], 0.0),
        # Two identical zero-area boxes: union 0, must be 0 and not NaN.
        ([5, 5, 5, 5], [5, 5, 5, 5], 0.0),
        # Zero-width line box lying on a: still 0.
        ([0, 0, 10, 10], [0, 4, 10, 4], 0.0),
    ],
)
def test_pairwise_iou_hand_made_pairs(box_a, box_b, expected):
    iou = box_ops.pairwise_iou(_f32([box_a]), _f32([box_b])).numpy()
    assert iou.shape == (1, 1)
    assert np.all(np.isfinite(iou))
    np.testing.assert_allclose(iou[0, 0], expected, rtol=1e-6, atol=1e-7)
    # IoU is symmetric.
    np.testing.assert_allclose(box_ops.pairwise_iou(_f32([box_b]), _f32([box_a])).numpy(), iou, rtol=1e-6)


def test_pairwise_iou_shape_and_values_match_numpy():
    rng = np.random.default_rng(0)
    a = _random_boxes(rng, 5, high=50.0, max_side=40.0)
    b = _random_boxes(rng, 7, high=50.0, max_side=40.0)
    iou = box_ops.pairwise_iou(a, b).numpy()
    assert iou.shape == (5, 7)
    assert iou.dtype == np.float32
    np.testing.assert_allclose(iou, _numpy_iou(a, b), rtol=1e-5, atol=1e-6)


def test_pairwise_iou_matrix_layout():
    # Row i is box i of the first set, column j box j of the second set.
    a = _f32([[0, 0, 10, 10], [100, 100, 110, 110]])
    b = _f32([[0, 5, 10, 15], [100, 100, 110, 110], [0, 0, 10, 10]])
    expected = [[1.0 / 3.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    np.testing.assert_allclose(box_ops.pairwise_iou(a, b).numpy(), expected, rtol=1e-6)


def test_pairwise_iou_batched():
    rng = np.random.default_rng(1)
    a = np.stack([_random_boxes(rng, 4, high=50.0, max_side=40.0) for _ in range(3)])  # [3, 4, 4]
    b = np.stack([_random_boxes(rng, 6, high=50.0, max_side=40.0) for _ in range(3)])  # [3, 6, 4]
    iou = box_ops.pairwise_iou(a, b).numpy()
    assert iou.shape == (3, 4, 6)
    # Each batch element is paired only with its own boxes.
    for i in range(3):
        np.testing.assert_allclose(iou[i], _numpy_iou(a[i], b[i]), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# encode_boxes / decode_boxes


def test_encode_known_case_unit_weights():
    anchor = _f32([0, 0, 10, 20])  # centre (5, 10), h 10, w 20
    box = _f32([2, 4, 22, 24])  # centre (12, 14), h 20, w 20
    # dy = (12 - 5) / 10 = 0.7; dx = (14 - 10) / 20 = 0.2; dh = log(20 / 10) = log 2; dw = log(20 / 20) = 0.
    expected = [0.7, 0.2, np.log(2.0), 0.0]
    np.testing.assert_allclose(box_ops.encode_boxes(box, anchor).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_encode_known_case_box_head_weights():
    anchor = _f32([0, 0, 10, 20])
    box = _f32([2, 4, 22, 24])
    # Same case with weights (10, 10, 5, 5): (10 * 0.7, 10 * 0.2, 5 * log 2, 5 * 0).
    expected = [7.0, 2.0, 5.0 * np.log(2.0), 0.0]
    deltas = box_ops.encode_boxes(box, anchor, BOX_HEAD_WEIGHTS).numpy()
    np.testing.assert_allclose(deltas, expected, rtol=1e-6, atol=1e-6)


def test_encode_known_case_distinct_weights():
    # Four different weights catch a weight applied to the wrong coordinate: (1 * 0.7, 2 * 0.2, 3 * log 2, 4 * log 2)
    # for a box of centre (12, 14) and size 20 x 40 on the anchor of centre (5, 10) and size 10 x 20.
    anchor = _f32([0, 0, 10, 20])
    box = _f32([2, -6, 22, 34])
    expected = [0.7, 0.4, 3.0 * np.log(2.0), 4.0 * np.log(2.0)]
    deltas = box_ops.encode_boxes(box, anchor, (1.0, 2.0, 3.0, 4.0))
    np.testing.assert_allclose(deltas.numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(box_ops.decode_boxes(deltas, anchor, (1.0, 2.0, 3.0, 4.0)).numpy(), box, atol=1e-5)


def test_encode_box_equal_to_anchor_is_zero():
    anchors = _f32([[3, 4, 13, 24], [50, 60, 70, 65]])
    np.testing.assert_allclose(box_ops.encode_boxes(anchors, anchors).numpy(), np.zeros((2, 4)), atol=1e-7)


def test_encode_all_zero_padded_box_is_finite():
    # Padded ground truth is all zeros; its (unused) delta must not be -inf.
    deltas = box_ops.encode_boxes(_f32([[0, 0, 0, 0]]), _f32([[0, 0, 16, 16]])).numpy()
    assert np.all(np.isfinite(deltas))


def test_decode_known_case():
    anchor = _f32([0, 0, 10, 20])  # centre (5, 10), h 10, w 20
    # yc = 0.7 * 10 + 5 = 12; xc = 0.2 * 20 + 10 = 14; h = e^log2 * 10 = 20; w = e^0 * 20 = 20
    # -> [12 - 10, 14 - 10, 12 + 10, 14 + 10] = [2, 4, 22, 24].
    deltas = _f32([0.7, 0.2, np.log(2.0), 0.0])
    np.testing.assert_allclose(box_ops.decode_boxes(deltas, anchor).numpy(), [2, 4, 22, 24], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
def test_encode_decode_round_trip(weights):
    rng = np.random.default_rng(2)
    boxes = _random_boxes(rng, 200)
    anchors = _anchors_near(rng, boxes)
    deltas = box_ops.encode_boxes(boxes, anchors, weights)
    decoded = box_ops.decode_boxes(deltas, anchors, weights).numpy()
    np.testing.assert_allclose(decoded, boxes, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
def test_encode_decode_round_trip_batched(weights):
    rng = np.random.default_rng(3)
    boxes = _random_boxes(rng, 24)
    anchors = _anchors_near(rng, boxes).reshape(2, 12, 4)
    boxes = boxes.reshape(2, 12, 4)
    deltas = box_ops.encode_boxes(boxes, anchors, weights)
    assert deltas.shape == (2, 12, 4)
    decoded = box_ops.decode_boxes(deltas, anchors, weights).numpy()
    np.testing.assert_allclose(decoded, boxes, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("weights", [RPN_WEIGHTS, BOX_HEAD_WEIGHTS])
def test_decode_clips_huge_log_deltas(weights):
    anchor = _f32([[0, 0, 16, 32]])  # centre (8, 16), h 16, w 32
    # Log deltas far beyond exp's float32 range (e^88.7 overflows); after dividing by the weight they are
    # clipped to MAX_LOG_SCALE = log(1000 / 16), so h = 16 * 62.5 = 1000 and w = 32 * 62.5 = 2000.
    deltas = _f32([[0.0, 0.0, 1e4, 1e4]])
    decoded = box_ops.decode_boxes(deltas, anchor, weights).numpy()
    assert np.all(np.isfinite(decoded))
    expected = [8 - 500, 16 - 1000, 8 + 500, 16 + 1000]
    np.testing.assert_allclose(decoded[0], expected, rtol=1e-4)
    # Huge negative log deltas shrink to a point at the centre, still finite.
    shrunk = box_ops.decode_boxes(_f32([[0.0, 0.0, -1e4, -1e4]]), anchor, weights).numpy()
    assert np.all(np.isfinite(shrunk))
    np.testing.assert_allclose(shrunk[0], [8, 16, 8, 16], atol=1e-4)


def test_decode_returns_float32_for_float16_deltas():
    anchor = _f32([[0, 0, 10, 20]])
    deltas = np.asarray([[0.5, -0.5, 0.0, 0.0]], np.float16)
    decoded = box_ops.decode_boxes(deltas, anchor)
    assert decoded.dtype == np.float32
    # yc = 0.5 * 10 + 5 = 10, xc = -0.5 * 20 + 10 = 0, same size -> [5, -10, 15, 10].
    np.testing.assert_allclose(decoded.numpy(), [[5, -10, 15, 10]], atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# clip_boxes, scale_boxes, format conversions


def test_clip_boxes():
    boxes = _f32(
        [
            [-5, -3, 50, 120],  # sticks out on every side of a 40 x 100 image
            [10, 20, 30, 40],  # inside: unchanged
            [-20, -20, -10, -10],  # fully outside (above-left): collapses onto the corner
            [45, 110, 60, 130],  # fully outside (below-right)
        ]
    )
    expected = [[0, 0, 40, 100], [10, 20, 30, 40], [0, 0, 0, 0], [40, 100, 40, 100]]
    np.testing.assert_array_equal(box_ops.clip_boxes(boxes, 40, 100).numpy(), expected)


def test_clip_boxes_uses_height_for_y_and_width_for_x():
    # A non-square image catches swapped height / width.
    boxes = _f32([[0, 0, 500, 500]])
    np.testing.assert_array_equal(box_ops.clip_boxes(boxes, 30, 70).numpy(), [[0, 0, 30, 70]])


def test_clip_boxes_batched_with_tensor_size():
    boxes = _f32([[[-1, -1, 300, 300]], [[10, 10, 20, 20]]])  # [2, 1, 4]
    clipped = box_ops.clip_boxes(boxes, np.int32(256), np.int32(128)).numpy()
    np.testing.assert_array_equal(clipped, [[[0, 0, 256, 128]], [[10, 10, 20, 20]]])


def test_scale_boxes():
    boxes = _f32([[10, 20, 30, 40], [0, 0, 1, 2]])
    # y coordinates * 0.5, x coordinates * 2.
    expected = [[5, 40, 15, 80], [0, 0, 0.5, 4]]
    np.testing.assert_allclose(box_ops.scale_boxes(boxes, 0.5, 2.0).numpy(), expected)


def test_scale_boxes_batched():
    boxes = np.tile(_f32([[10, 20, 30, 40]]), (2, 3, 1))  # [2, 3, 4]
    scaled = box_ops.scale_boxes(boxes, 3.0, 0.25).numpy()
    assert scaled.shape == (2, 3, 4)
    np.testing.assert_allclose(scaled, np.tile(_f32([[30, 5, 90, 10]]), (2, 3, 1)))


def test_xywh_to_yxyx_known_case():
    # COCO [x=10, y=20, w=30, h=40] -> [y1=20, x1=10, y2=20+40=60, x2=10+30=40].
    np.testing.assert_array_equal(box_ops.xywh_to_yxyx(_f32([10, 20, 30, 40])).numpy(), [20, 10, 60, 40])


def test_yxyx_to_xywh_known_case():
    # [y1=20, x1=10, y2=60, x2=40] -> [x=10, y=20, w=40-10=30, h=60-20=40].
    np.testing.assert_array_equal(box_ops.yxyx_to_xywh(_f32([20, 10, 60, 40])).numpy(), [10, 20, 30, 40])


def test_xywh_yxyx_round_trip():
    rng = np.random.default_rng(4)
    boxes = _random_boxes(rng, 50).reshape(5, 10, 4)
    np.testing.assert_allclose(box_ops.xywh_to_yxyx(box_ops.yxyx_to_xywh(boxes)).numpy(), boxes, rtol=1e-6)
    xywh = box_ops.yxyx_to_xywh(boxes).numpy()
    np.testing.assert_allclose(box_ops.yxyx_to_xywh(box_ops.xywh_to_yxyx(xywh)).numpy(), xywh, rtol=1e-5, atol=1e-4)


def test_flip_boxes_left_right_mirrors_x_and_is_its_own_inverse():
    boxes = tf.constant([[2.0, 3.0, 10.0, 7.0], [0.0, 0.0, 64.0, 64.0]])
    flipped = box_ops.flip_boxes_left_right(boxes, 64)
    np.testing.assert_allclose(flipped, [[2.0, 57.0, 10.0, 61.0], [0.0, 0.0, 64.0, 64.0]])
    np.testing.assert_allclose(box_ops.flip_boxes_left_right(flipped, 64), boxes)


def test_deltas_regressed_in_the_mirror_decode_to_the_mirrored_box():
    rng = np.random.default_rng(0)
    anchors = tf.constant([[5.0, 8.0, 20.0, 30.0], [30.0, 1.0, 60.0, 12.0]])
    deltas = tf.constant(rng.normal(0, 0.5, (2, 4)), tf.float32)
    weights = (10.0, 10.0, 5.0, 5.0)
    # a delta found in the mirror image, on the mirrored anchor, decodes there to the mirror of some box B;
    # mapped back, the same delta decodes on the anchor itself to B
    in_mirror = box_ops.decode_boxes(deltas, box_ops.flip_boxes_left_right(anchors, 64), weights)
    mapped_back = box_ops.decode_boxes(box_ops.flip_deltas_left_right(deltas), anchors, weights)
    np.testing.assert_allclose(box_ops.flip_boxes_left_right(in_mirror, 64), mapped_back, rtol=1e-5, atol=1e-4)
