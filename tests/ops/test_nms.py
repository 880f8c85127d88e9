"""Tests for mrcnn_tf/ops/nms.py on hand-made boxes whose IoUs are worked out in comments.

Shape letters: ``B`` batch, ``N`` candidate boxes, ``R`` proposals, ``K`` classes, ``D`` detections.
"""
import numpy as np
import tensorflow as tf

from mrcnn_tf.ops.nms import DISABLED_SCORE, batched_padded_nms, padded_nms, per_class_detections


def _f32(values):
    return np.asarray(values, np.float32)


# A and B overlap: 10 x 9 = 90, union 200 - 90 = 110 -> IoU 0.82 > 0.5; C is separate; D scores low.
BOXES = _f32([[0, 1, 10, 11], [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])  # B, A, C, D
SCORES = _f32([0.8, 0.9, 0.7, 0.1])


def test_padded_nms_keeps_best_of_overlapping_pair_and_separate_box():
    indices, valid = padded_nms(BOXES, SCORES, 6, 0.5)
    assert indices.shape == valid.shape == (6,)
    assert indices.dtype == tf.int32 and valid.dtype == tf.bool
    # A (0.9) suppresses B (0.8); C (0.7) and D (0.1) stay; best first.
    np.testing.assert_array_equal(valid.numpy(), [True, True, True, False, False, False])
    np.testing.assert_array_equal(indices.numpy()[:3], [1, 2, 3])


def test_padded_nms_iou_threshold_above_overlap_keeps_both():
    indices, valid = padded_nms(BOXES, SCORES, 6, 0.9)  # IoU 0.82 < 0.9
    np.testing.assert_array_equal(indices.numpy()[: valid.numpy().sum()], [1, 0, 2, 3])


def test_padded_nms_score_threshold_and_max_output():
    indices, valid = padded_nms(BOXES, SCORES, 6, 0.5, score_threshold=0.2)  # D (0.1) is not above 0.2
    np.testing.assert_array_equal(indices.numpy()[: valid.numpy().sum()], [1, 2])
    indices, valid = padded_nms(BOXES, SCORES, 1, 0.5)
    assert indices.shape == (1,)
    np.testing.assert_array_equal(indices.numpy(), [1])
    # Candidates disabled with DISABLED_SCORE are never kept.
    _, valid = padded_nms(BOXES, _f32([DISABLED_SCORE] * 4), 3, 0.5)
    assert not valid.numpy().any()


def test_padded_nms_output_size_is_static_for_unknown_input_size():
    fn = tf.function(lambda b, s: padded_nms(b, s, 5, 0.5),
                     input_signature=[tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.float32)])
    indices, valid = fn.get_concrete_function().structured_outputs
    assert indices.shape.as_list() == [5] and valid.shape.as_list() == [5]


def test_batched_padded_nms_per_image():
    # Image 0: the case above. Image 1: three separate boxes, scores in a different order.
    boxes = np.stack([BOXES, _f32([[0, 0, 5, 5], [10, 10, 15, 15], [20, 20, 25, 25], [0, 0, 5, 5]])])
    scores = np.stack([SCORES, _f32([0.2, 0.6, 0.4, 0.1])])  # image 1: box 3 == box 0 (IoU 1), lower score
    kept_boxes, kept_scores, valid = batched_padded_nms(boxes, scores, 4, 0.5)
    assert kept_boxes.shape == (2, 4, 4) and kept_scores.shape == (2, 4) and valid.shape == (2, 4)
    np.testing.assert_array_equal(valid.numpy(), [[True, True, True, False], [True, True, True, False]])
    np.testing.assert_array_equal(kept_boxes.numpy()[0], [BOXES[1], BOXES[2], BOXES[3], [0, 0, 0, 0]])
    np.testing.assert_array_equal(kept_boxes.numpy()[1], [[10, 10, 15, 15], [20, 20, 25, 25], [0, 0, 5, 5], [0] * 4])
    np.testing.assert_allclose(kept_scores.numpy(), [[0.9, 0.7, 0.1, DISABLED_SCORE], [0.6, 0.4, 0.2, DISABLED_SCORE]])


# ----------------------------------------------------------------------------------------------------------------
# per_class_detections, K = 3 (0 background, 1, 2)

SQUARE, SHIFTED, FAR, ELSEWHERE = [0, 0, 10, 10], [0, 1, 10, 11], [20, 20, 30, 30], [40, 40, 50, 50]
# Per proposal: boxes for classes 0, 1, 2 and the probabilities; the score threshold is 0.3.
DETECTION_CASE = [
    ([ELSEWHERE, SQUARE, ELSEWHERE], [0.1, 0.8, 0.1], True),  # r0: class 1 at 0.8 -> kept
    ([ELSEWHERE, SHIFTED, ELSEWHERE], [0.2, 0.7, 0.1], True),  # r1: class 1 at 0.7, IoU 0.82 with r0 -> suppressed
    ([ELSEWHERE, ELSEWHERE, SQUARE], [0.2, 0.2, 0.6], True),  # r2: class 2 at 0.6 on r0's box -> kept (other class)
    ([ELSEWHERE, FAR, FAR], [0.1, 0.5, 0.4], True),  # r3: class 1 at 0.5 and class 2 at 0.4 -> both kept
    ([ELSEWHERE, [60, 60, 70, 70], ELSEWHERE], [0.0, 0.99, 0.01], False),  # r4: invalid proposal -> ignored
    ([SQUARE, ELSEWHERE, ELSEWHERE], [0.9, 0.05, 0.05], True),  # r5: background -> never a detection
]


def _detections(cases, max_detections=6, score_threshold=0.3):
    boxes = _f32([[c[0] for c in image] for image in cases])  # [B, R, K, 4]
    probs = _f32([[c[1] for c in image] for image in cases])  # [B, R, K]
    valid = np.asarray([[c[2] for c in image] for image in cases])
    out = per_class_detections(boxes, probs, valid, score_threshold, 0.5, max_detections)
    return {name: value.numpy() for name, value in out.items()}


def test_per_class_detections_hand_case():
    out = _detections([DETECTION_CASE])
    # Sorted: 0.8 (r0, class 1), 0.6 (r2, class 2), 0.5 (r3, class 1), 0.4 (r3, class 2), then 2 padding.
    np.testing.assert_allclose(out["scores"][0], [0.8, 0.6, 0.5, 0.4, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(out["classes"][0], [1, 2, 1, 2, 0, 0])
    np.testing.assert_array_equal(out["boxes"][0], [SQUARE, SQUARE, FAR, FAR, [0] * 4, [0] * 4])
    np.testing.assert_array_equal(out["valid"][0], [True] * 4 + [False] * 2)
    np.testing.assert_array_equal(out["num_detections"], [4])


def test_per_class_detections_shapes_dtypes_and_empty_image():
    # Image 1: nothing above 0.3 in a foreground class.
    empty = [([SQUARE, SQUARE, SQUARE], [0.8, 0.1, 0.1], True)] * 5 + [([SQUARE] * 3, [0.0, 0.9, 0.1], False)]
    out = _detections([DETECTION_CASE, empty])
    assert out["boxes"].shape == (2, 6, 4) and out["boxes"].dtype == np.float32
    assert out["scores"].shape == (2, 6) and out["scores"].dtype == np.float32
    assert out["classes"].shape == (2, 6) and out["classes"].dtype == np.int32
    assert out["valid"].shape == (2, 6) and out["valid"].dtype == bool
    assert out["num_detections"].shape == (2,) and out["num_detections"].dtype == np.int32
    np.testing.assert_array_equal(out["num_detections"], [4, 0])
    np.testing.assert_array_equal(out["scores"][1], 0.0)
    np.testing.assert_array_equal(out["classes"][1], 0)
    np.testing.assert_array_equal(out["boxes"][1], 0.0)
    assert not out["valid"][1].any()


def test_per_class_detections_keeps_only_the_best_max_detections():
    out = _detections([DETECTION_CASE], max_detections=3)
    np.testing.assert_allclose(out["scores"][0], [0.8, 0.6, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(out["classes"][0], [1, 2, 1])
    np.testing.assert_array_equal(out["num_detections"], [3])


def test_per_class_detections_scores_sorted_on_random_input():
    rng = np.random.default_rng(0)
    yx = rng.uniform(0, 50, (2, 30, 3, 2))
    boxes = np.concatenate([yx, yx + rng.uniform(2, 14, (2, 30, 3, 2))], axis=-1).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), (2, 30)).astype(np.float32)
    valid = rng.uniform(size=(2, 30)) > 0.2
    out = per_class_detections(boxes, probs, valid, 0.1, 0.5, 10)
    scores, classes, kept = out["scores"].numpy(), out["classes"].numpy(), out["valid"].numpy()
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert np.all(classes[kept] >= 1) and np.all(scores[kept] > 0.1)
    # Every kept (score, class) is the probability of a valid proposal for that class.
    for b in range(2):
        for score, cls in zip(scores[b][kept[b]], classes[b][kept[b]]):
            assert np.any(np.isclose(probs[b, valid[b], cls], score))


def test_per_class_detections_drop_boxes_below_the_minimal_size():
    # A confident box regressed past the image edge and clipped to zero width ([100, 256, 140, 256]) would make
    # an empty mask yet count as a detection; it is dropped before NMS, as torchvision drops boxes under 1e-2 px.
    boxes = tf.constant([[[[100.0, 256.0, 140.0, 256.0], [0, 0, 0, 0]],
                          [[10.0, 10.0, 30.0, 30.0], [0, 0, 0, 0]],
                          [[50.0, 50.0, 50.005, 90.0], [0, 0, 0, 0]]]])  # [1, 3, 1, 4] -> per class below
    boxes = tf.tile(boxes[:, :, :1], [1, 1, 2, 1])  # [B=1, R=3, K=2, 4]
    probs = tf.constant([[[0.01, 0.99], [0.3, 0.7], [0.05, 0.95]]])
    valid = tf.constant([[True, True, True]])
    kept = per_class_detections(boxes, probs, valid, 0.05, 0.5, 3, min_size=0.01)
    np.testing.assert_array_equal(kept["num_detections"], [1])
    np.testing.assert_allclose(kept["scores"][0, 0], 0.7, rtol=1e-6)
    np.testing.assert_array_equal(kept["boxes"][0, 0], [10, 10, 30, 30])
    everything = per_class_detections(boxes, probs, valid, 0.05, 0.5, 3)  # min_size 0: all three
    np.testing.assert_array_equal(everything["num_detections"], [3])
