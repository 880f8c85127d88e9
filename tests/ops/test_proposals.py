"""Tests for mrcnn_tf/ops/proposals.py on hand-made anchors over two levels of a 64-pixel image.

Shape letters: ``B`` batch, ``N`` anchors of all levels, ``P`` proposals kept.
"""
import numpy as np
import tensorflow as tf

from mrcnn_tf.ops.proposals import select_proposals

IMAGE_SIZE = 64
MIN_SIZE = 2.0
NMS_IOU = 0.7

# Level 0 (5 anchors) then level 1 (3 anchors); deltas are 0 except where noted.
ANCHORS = np.asarray(
    [
        [0, 0, 16, 16],  # a0 logit 5
        [0, 2, 16, 18],  # a1 logit 4: IoU with a0 = 16 x 14 / (512 - 224) = 0.78 > 0.7 -> suppressed
        [32, 32, 48, 48],  # a2 logit 3, delta (0.5, 0, log 2, 0): centre y 40 + 8 = 48, height 32 -> [32, 32, 64, 48]
        [60, 60, 76, 76],  # a3 logit 2: clipped to [60, 60, 64, 64]
        [10, 40, 11.5, 41.5],  # a4 logit 10: 1.5 x 1.5 < MIN_SIZE -> dropped despite the best score
        [0, 0, 16, 16],  # b0 logit 4.5: identical to a0 but on level 1 -> survives
        [-8, -8, 40, 40],  # b1 logit 1: clipped to [0, 0, 40, 40]
        [20, 0, 52, 32],  # b2 logit -1
    ],
    np.float32,
)
LEVEL_COUNTS = [5, 3]
LOGITS = np.asarray([5, 4, 3, 2, 10, 4.5, 1, -1], np.float32)
DELTAS = np.zeros((8, 4), np.float32)
DELTAS[2] = [0.5, 0.0, np.log(2.0), 0.0]
# Expected proposals, best first: a0, b0, decoded a2, clipped a3, clipped b1, b2.
EXPECTED = np.asarray(
    [[0, 0, 16, 16], [0, 0, 16, 16], [32, 32, 64, 48], [60, 60, 64, 64], [0, 0, 40, 40], [20, 0, 52, 32]], np.float32
)


def _select(logits, deltas, pre_nms_topk=10, post_nms_topk=8):
    proposals, valid = select_proposals(
        logits, deltas, ANCHORS, LEVEL_COUNTS, pre_nms_topk, post_nms_topk, NMS_IOU, IMAGE_SIZE, MIN_SIZE
    )
    return proposals.numpy(), valid.numpy()


def test_select_proposals_hand_case():
    proposals, valid = _select(LOGITS[None], DELTAS[None])
    assert proposals.shape == (1, 8, 4) and valid.shape == (1, 8)
    assert proposals.dtype == np.float32 and valid.dtype == bool
    np.testing.assert_array_equal(valid[0], [True] * 6 + [False] * 2)
    np.testing.assert_allclose(proposals[0, :6], EXPECTED, atol=1e-4)
    np.testing.assert_array_equal(proposals[0, 6:], 0.0)  # padding is zeros


def test_select_proposals_pre_nms_topk_is_per_level():
    # pre_nms_topk 3: level 0 keeps a4 (dropped: tiny), a0, a1 (suppressed by a0) -> a0; level 1 keeps b0, b1, b2.
    proposals, valid = _select(LOGITS[None], DELTAS[None], pre_nms_topk=3)
    np.testing.assert_array_equal(valid[0], [True] * 4 + [False] * 4)
    np.testing.assert_allclose(proposals[0, :4], EXPECTED[[0, 1, 4, 5]], atol=1e-4)


def test_select_proposals_post_nms_topk_keeps_the_best():
    proposals, valid = _select(LOGITS[None], DELTAS[None], post_nms_topk=3)
    assert proposals.shape == (1, 3, 4)
    assert valid.all()
    np.testing.assert_allclose(proposals[0], EXPECTED[:3], atol=1e-4)


def test_select_proposals_batch_of_two_images():
    # Image 1 reorders the level-0 scores: a3 (5) leads, and now a1 (4) comes before a0 (2) and suppresses it.
    logits = np.stack([LOGITS, np.asarray([2, 4, 3, 5, 10, 4.5, 1, -1], np.float32)])
    proposals, valid = _select(logits, np.stack([DELTAS, DELTAS]))
    np.testing.assert_allclose(proposals[0, :6], EXPECTED, atol=1e-4)
    expected_1 = [[60, 60, 64, 64], [0, 0, 16, 16], [0, 2, 16, 18], [32, 32, 64, 48], [0, 0, 40, 40],
                  [20, 0, 52, 32]]  # scores 5, 4.5 (b0), 4 (a1), 3, 1, -1
    np.testing.assert_array_equal(valid[1], [True] * 6 + [False] * 2)
    np.testing.assert_allclose(proposals[1, :6], expected_1, atol=1e-4)


def test_select_proposals_all_boxes_inside_the_image():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 8)).astype(np.float32)
    deltas = rng.normal(0, 1.5, (2, 8, 4)).astype(np.float32)
    proposals, valid = _select(logits, deltas)
    kept = proposals[valid]
    assert np.all(kept >= 0.0) and np.all(kept <= IMAGE_SIZE)
    assert np.all(kept[:, 2] - kept[:, 0] >= MIN_SIZE) and np.all(kept[:, 3] - kept[:, 1] >= MIN_SIZE)
    np.testing.assert_array_equal(proposals[~valid], 0.0)


def test_select_proposals_output_shape_is_static():
    fn = tf.function(
        lambda logits, deltas: select_proposals(
            logits, deltas, ANCHORS, LEVEL_COUNTS, 10, 8, NMS_IOU, IMAGE_SIZE, MIN_SIZE
        ),
        input_signature=[tf.TensorSpec([None, 8], tf.float32), tf.TensorSpec([None, 8, 4], tf.float32)],
    )
    proposals, valid = fn.get_concrete_function().structured_outputs
    assert proposals.shape.as_list() == [None, 8, 4] and valid.shape.as_list() == [None, 8]
