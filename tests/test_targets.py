"""Tests for mrcnn_tf/targets.py on hand-placed anchors, proposals and masks whose IoUs are worked out in comments.

Box targets are checked by decoding them with a NumPy decoder written here from the Faster R-CNN equations, not
with ``ops.boxes.decode_boxes``.

Shape letters: ``B`` batch, ``N`` anchors, ``G`` ground-truth instances, ``P`` proposals, ``S`` sampled RoIs,
``M`` mask side, ``H``/``W`` mask size.
"""
import numpy as np
from conftest import ellipse_masks
from reference import reference_roi_weights
from mrcnn_tf.targets import mask_targets, rpn_targets, sample_rois

RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU = 0.7, 0.3
ROI_POSITIVE_IOU, ROI_NEGATIVE_IOU = 0.5, 0.5
ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _np_decode(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """``[..., 4]`` deltas applied to ``[..., 4]`` anchors: centre shift by ``d / w * size``, size by ``exp(d / w)``."""
    deltas = np.asarray(deltas, np.float64) / np.asarray(weights, np.float64)
    anchors = np.asarray(anchors, np.float64)
    h, w = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    yc, xc = anchors[..., 0] + h / 2 + deltas[..., 0] * h, anchors[..., 1] + w / 2 + deltas[..., 1] * w
    h, w = h * np.exp(deltas[..., 2]), w * np.exp(deltas[..., 3])
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def _f32(values):
    return np.asarray(values, np.float32)


# ----------------------------------------------------------------------------------------------------------------
# rpn_targets

# Hand-placed anchors; IoUs with the ground truth of image 0 (GT_A = [1, 1, 11, 11], GT_B = [20, 20, 30, 30]):
ANCHORS = _f32(
    [
        [0, 0, 10, 10],  # 0: GT_A: overlap 9 x 9 = 81, union 100 + 100 - 81 = 119 -> 0.68 < 0.7, but GT_A's best
        [0, 5, 10, 15],  # 1: GT_A: overlap 9 x 6 = 54, union 146 -> 0.37 -> ignored (between 0.3 and 0.7)
        [20, 20, 30, 30],  # 2: GT_B exactly -> IoU 1 -> positive
        [20, 25, 30, 35],  # 3: GT_B: overlap 10 x 5 = 50, union 150 -> 0.33 -> ignored
        [40, 40, 50, 50],  # 4: identical to image 0's padded box, IoU 0 with every valid box -> negative
    ]
    + [[100 + 10 * i, 0, 110 + 10 * i, 10] for i in range(8)]  # 5..12: far away -> negatives
)
NUM_ANCHORS = len(ANCHORS)  # 13
GT_A, GT_B = [1, 1, 11, 11], [20, 20, 30, 30]
# Image 1: one instance on anchor 5; its padding repeats anchor 0's box with class -1.
GT_C = [100, 0, 110, 10]
GT_BOXES = _f32([[GT_A, GT_B, [40, 40, 50, 50]], [GT_C, [0, 0, 10, 10], [0, 0, 10, 10]]])  # [B=2, G=3, 4]
GT_CLASSES = np.asarray([[1, 1, -1], [1, -1, -1]], np.int32)


def _rpn(gt_boxes, gt_classes, num_samples, positive_fraction, anchors=ANCHORS, seed=None):
    labels, weights, positive, box_targets = rpn_targets(
        anchors, gt_boxes, gt_classes, RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU, num_samples, positive_fraction, seed
    )
    return labels.numpy(), weights.numpy(), positive.numpy(), box_targets.numpy()


def test_rpn_labels_every_gt_best_anchor_and_never_padding():
    labels, _, _, _ = _rpn(GT_BOXES, GT_CLASSES, 6, 0.5)
    assert labels.shape == (2, NUM_ANCHORS) and labels.dtype == np.float32
    expected = np.zeros((2, NUM_ANCHORS), np.float32)
    expected[0, [0, 2]] = 1  # anchor 0 only through the best-anchor rule (IoU 0.68), anchor 2 at IoU 1
    expected[1, 5] = 1  # image 1: GT_C == anchor 5; anchor 0 equals a padded box but stays negative
    np.testing.assert_array_equal(labels, expected)


def test_rpn_weights_sum_to_num_samples_and_skip_ignored():
    # Image 0: 2 positives (cap 6 * 0.5 = 3) + 4 of the 9 negatives (anchors 4..12) = 6 samples.
    # Image 1: 1 positive + 5 of the 12 negatives = 6.
    labels, weights, positive, _ = _rpn(GT_BOXES, GT_CLASSES, 6, 0.5, seed=3)
    assert weights.shape == positive.shape == (2, NUM_ANCHORS)
    np.testing.assert_array_equal(weights.sum(axis=1), [6.0, 6.0])
    assert set(np.unique(weights)) <= {0.0, 1.0} and set(np.unique(positive)) <= {0.0, 1.0}
    np.testing.assert_array_equal(positive, labels * weights)  # all positives fit under the cap here
    np.testing.assert_array_equal(weights[0, [1, 3]], [0.0, 0.0])  # ignored anchors are never sampled


def test_rpn_positive_fraction_caps_sampled_positives():
    # 8 copies of the ground-truth box (all IoU 1, positive) and 10 far negatives; S = 8 at 0.25 -> 2 positives.
    gt = [0, 0, 10, 10]
    anchors = _f32([gt] * 8 + [[100 + 10 * i, 0, 110 + 10 * i, 10] for i in range(10)])
    labels, weights, positive, _ = _rpn(_f32([[gt, [0, 0, 0, 0]]]), np.asarray([[1, -1]], np.int32), 8, 0.25,
                                        anchors=anchors)
    np.testing.assert_array_equal(labels[0], [1.0] * 8 + [0.0] * 10)  # labels are not subsampled
    assert positive.sum() == 2.0  # int(8 * 0.25)
    assert weights.sum() == 8.0  # 2 positives + 6 negatives
    assert np.all(labels[positive == 1] == 1) and np.all(weights[positive == 1] == 1)


def test_rpn_box_targets_of_positives_decode_to_their_gt():
    labels, _, _, box_targets = _rpn(GT_BOXES, GT_CLASSES, 6, 0.5)
    assert box_targets.shape == (2, NUM_ANCHORS, 4) and box_targets.dtype == np.float32
    # Anchor 0 (centre 5, 5, side 10) -> GT_A (centre 6, 6, side 10): dy = dx = 1 / 10, dh = dw = log(1) = 0.
    np.testing.assert_allclose(box_targets[0, 0], [0.1, 0.1, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(box_targets[0, 2], [0.0, 0.0, 0.0, 0.0], atol=1e-6)
    for image, anchor, gt in [(0, 0, GT_A), (0, 2, GT_B), (1, 5, GT_C)]:
        assert labels[image, anchor] == 1
        np.testing.assert_allclose(_np_decode(box_targets[image, anchor], ANCHORS[anchor]), gt, atol=1e-4)


def test_rpn_image_without_instances_is_all_background():
    gt_boxes = _f32([[[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0, 0]]])  # boxes on anchors 0 and 2, all padding
    labels, weights, positive, box_targets = _rpn(gt_boxes, np.full((1, 3), -1, np.int32), 6, 0.5)
    np.testing.assert_array_equal(labels, np.zeros((1, NUM_ANCHORS)))
    np.testing.assert_array_equal(positive, np.zeros((1, NUM_ANCHORS)))
    assert weights.sum() == 6.0  # all 13 anchors are negatives; 6 sampled
    assert np.all(np.isfinite(box_targets))  # unused, but a NaN here would poison a masked loss


# ----------------------------------------------------------------------------------------------------------------
# sample_rois

ROI_GT = [[10, 10, 30, 30], [40, 40, 60, 50], [0, 40, 10, 50]]  # the last is padding (class -1)
ROI_GT_CLASSES = [1, 2, -1]
PROPOSALS = [
    [10, 10, 30, 28],  # 0 valid: gt 0 overlap 20 x 18 = 360 / 400 -> 0.9 -> positive, class 1
    [41, 40, 60, 50],  # 1 INVALID: gt 1 overlap 19 x 10 = 190 / 200 -> 0.95; must never be sampled
    [0, 40, 10, 50],  # 2 valid: identical to the padded box -> negative
    [60, 0, 64, 4],  # 3 valid: far -> negative
    [0, 60, 4, 64],  # 4 INVALID: far; must never be sampled
    [50, 0, 60, 10],  # 5 valid: far -> negative
]
PROPOSAL_VALID = [True, False, True, True, False, True]


def _sample(proposals, valid, gt_boxes, gt_classes, num_samples=8, positive_fraction=0.5, seed=None):
    out = sample_rois(
        _f32(proposals), np.asarray(valid, bool), _f32(gt_boxes), np.asarray(gt_classes, np.int32), num_samples,
        positive_fraction, ROI_POSITIVE_IOU, ROI_NEGATIVE_IOU, ROI_BOX_WEIGHTS, seed,
    )
    return {name: value.numpy() for name, value in out.items()}


def _rows(boxes):
    return sorted(tuple(float(v) for v in box) for box in boxes)


def test_sample_rois_shapes_and_dtypes_are_fixed():
    out = _sample([PROPOSALS, PROPOSALS], [PROPOSAL_VALID] * 2, [ROI_GT, ROI_GT], [ROI_GT_CLASSES] * 2)
    assert out["rois"].shape == out["box_targets"].shape == (2, 8, 4)
    for name in ("classes", "matched_gt", "positive", "valid"):
        assert out[name].shape == (2, 8), name
    assert out["rois"].dtype == out["box_targets"].dtype == np.float32
    assert out["classes"].dtype == out["matched_gt"].dtype == np.int32
    assert out["positive"].dtype == out["valid"].dtype == bool


def test_sample_rois_labels_classes_and_order():
    # Candidates = 6 proposals + 3 gt boxes. Positives: proposal 0, gt 0, gt 1 (3 <= cap 8 * 0.5 = 4).
    # Valid negatives: proposals 2, 3, 5 (proposal 2 equals the padded box). 6 valid samples, 2 padding.
    out = _sample([PROPOSALS], [PROPOSAL_VALID], [ROI_GT], [ROI_GT_CLASSES], seed=1)
    rois, classes, positive, valid = out["rois"][0], out["classes"][0], out["positive"][0], out["valid"][0]
    np.testing.assert_array_equal(positive, [True] * 3 + [False] * 5)  # positives first
    np.testing.assert_array_equal(valid, [True] * 6 + [False] * 2)
    assert _rows(rois[:3]) == _rows([PROPOSALS[0], ROI_GT[0], ROI_GT[1]])
    assert _rows(rois[3:6]) == _rows([PROPOSALS[2], PROPOSALS[3], PROPOSALS[5]])
    expected_class = {tuple(map(float, PROPOSALS[0])): 1, tuple(map(float, ROI_GT[0])): 1,
                      tuple(map(float, ROI_GT[1])): 2}
    for roi, cls in zip(rois[:3], classes[:3]):
        assert cls == expected_class[tuple(map(float, roi))]
    np.testing.assert_array_equal(classes[3:], 0)  # negatives and padding are background


def test_sample_rois_box_targets_decode_to_matched_gt():
    out = _sample([PROPOSALS], [PROPOSAL_VALID], [ROI_GT], [ROI_GT_CLASSES])
    positive = out["positive"][0]
    matched = out["matched_gt"][0][positive]
    decoded = _np_decode(out["box_targets"][0][positive], out["rois"][0][positive], ROI_BOX_WEIGHTS)
    np.testing.assert_allclose(decoded, _f32(ROI_GT)[matched], atol=1e-4)
    # Proposal 0 [10, 10, 30, 28] (centre 20, 19, size 20 x 18) -> gt 0 (centre 20, 20, 20 x 20):
    # dy = 10 * 0 / 20 = 0, dx = 10 * 1 / 18 = 0.5556, dh = 5 * log(1) = 0, dw = 5 * log(20 / 18) = 0.5268.
    row = [i for i in range(3) if tuple(out["rois"][0][i]) == tuple(map(float, PROPOSALS[0]))][0]
    np.testing.assert_allclose(out["box_targets"][0][row], [0.0, 10 / 18, 0.0, 5 * np.log(20 / 18)], rtol=1e-5)
    assert out["matched_gt"][0][row] == 0


def test_sample_rois_never_samples_invalid_proposals():
    for seed in range(5):
        out = _sample([PROPOSALS], [PROPOSAL_VALID], [ROI_GT], [ROI_GT_CLASSES], seed=seed)
        sampled = set(_rows(out["rois"][0][out["valid"][0]]))
        assert tuple(map(float, PROPOSALS[1])) not in sampled
        assert tuple(map(float, PROPOSALS[4])) not in sampled


def test_sample_rois_gt_boxes_give_positives_when_proposals_are_far():
    gt = [[10, 10, 30, 30], [40, 40, 60, 50], [0, 0, 0, 0]]
    far = [[0, 50, 8, 60], [50, 0, 60, 8], [56, 56, 64, 64]]  # IoU 0 with both instances
    out = _sample([far], [[True] * 3], [gt], [[1, 2, -1]], num_samples=6)  # S <= P + G = 6 candidates
    positive = out["positive"][0]
    assert positive.sum() == 2  # exactly the two appended gt boxes
    assert _rows(out["rois"][0][positive]) == _rows(gt[:2])
    np.testing.assert_allclose(out["box_targets"][0][positive], 0.0, atol=1e-6)  # each roi is its own gt
    assert sorted(out["classes"][0][positive]) == [1, 2]
    assert out["valid"][0].sum() == 5  # 2 gt + 3 far proposals; the padded gt is not a candidate


def test_sample_rois_tumour_free_image_has_no_positive():
    # Batch of 2: image 0 has instances, image 1 is all padding (boxes even identical to its proposals).
    gt = [ROI_GT, [PROPOSALS[0], PROPOSALS[2], [0, 0, 0, 0]]]
    out = _sample([PROPOSALS, PROPOSALS], [PROPOSAL_VALID] * 2, gt, [ROI_GT_CLASSES, [-1, -1, -1]])
    assert out["positive"][0].sum() == 3
    assert not out["positive"][1].any()
    np.testing.assert_array_equal(out["classes"][1], 0)
    assert out["valid"][1].sum() == 4  # the 4 valid proposals; padded gt boxes are not candidates


# ----------------------------------------------------------------------------------------------------------------
# mask_targets

MASK_SIZE = 28


def _rect_mask(size, y1, x1, y2, x2):
    mask = np.zeros((size, size), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def _mask_targets(masks, rois, matched):
    out = mask_targets(np.asarray(masks), _f32(rois), np.asarray(matched, np.int32), MASK_SIZE)
    return out.numpy()


def test_mask_target_of_roi_equal_to_rectangle_box_is_all_ones():
    # Mask rows 8..23, cols 4..27 -> box [8, 4, 24, 28]. The worst (corner) cell: its 2 x 2 samples are at
    # y = 7.5 + (0.25, 0.75) * 16/28 = 7.64, 7.93 (values 0.64, 0.93) and x = 3.5 + (0.25, 0.75) * 24/28 = 3.71,
    # 4.14 (values 0.71, 1.0); mean 0.79 * 0.86 = 0.67 >= 0.5, so every cell is 1.
    masks = _rect_mask(32, 8, 4, 24, 28)[None, None]  # [B=1, G=1, 32, 32]
    target = _mask_targets(masks, [[[8, 4, 24, 28]]], [[0]])
    assert target.shape == (1, 1, MASK_SIZE, MASK_SIZE) and target.dtype == np.float32
    np.testing.assert_array_equal(target, 1.0)


def test_mask_target_half_split():
    # The instance fills columns 16..31; the RoI [8, 8, 24, 24] has it on its right half, the boundary x = 16 on
    # the RoI's midline. Column 13 samples x = 7.5 + (13.25, 13.75) * 16/28 = 15.07, 15.36 -> mean 0.21 -> 0;
    # column 14 samples 15.64, 15.93 -> mean 0.79 -> 1. So columns 0..13 are 0 and 14..27 are 1, on every row.
    masks = _rect_mask(32, 0, 16, 32, 32)[None, None]
    target = _mask_targets(masks, [[[8, 8, 24, 24]]], [[0]])[0, 0]
    expected = np.zeros((MASK_SIZE, MASK_SIZE), np.float32)
    expected[:, 14:] = 1.0
    np.testing.assert_array_equal(target, expected)


def test_mask_target_uses_matched_instance_in_each_image():
    # Three disjoint rectangles per image, placed differently in the two images. Sides are >= 12 pixels: a side
    # L puts the corner cell's samples at 0.5 + (0.25, 0.75) L / 28 inside the edge pixel, mean 0.5 + L / 56, and
    # the corner is 1 only if (0.5 + L / 56)^2 >= 0.5, i.e. L >= 11.6.
    boxes = [[[2, 2, 14, 14], [16, 2, 30, 16], [2, 16, 16, 30]], [[16, 16, 30, 30], [2, 2, 14, 18], [2, 19, 14, 31]]]
    masks = np.stack([np.stack([_rect_mask(32, *box) for box in image]) for image in boxes])  # [2, 3, 32, 32]
    # RoI r = instance r's box; matched to the right instance, or (last RoI) to a wrong one.
    rois = [[boxes[b][2], boxes[b][0], boxes[b][1], boxes[b][0]] for b in range(2)]
    matched = [[2, 0, 1, 1], [2, 0, 1, 1]]
    target = _mask_targets(masks, rois, matched)
    assert target.shape == (2, 4, MASK_SIZE, MASK_SIZE)
    np.testing.assert_array_equal(target[:, :3], 1.0)
    np.testing.assert_array_equal(target[:, 3], 0.0)  # instance 0's box holds nothing of instance 1


def _np_mask_target(mask, roi, size, ratio=2):
    """The RoI's ``[size, size]`` crop of ``mask``: aligned RoIAlign (2 x 2 samples a cell), before thresholding."""
    weights = reference_roi_weights(roi, 1.0, mask.shape[0], mask.shape[1], size, ratio)  # [size, size, H, W]
    return np.tensordot(weights, mask, axes=([2, 3], [0, 1]))


def test_mask_target_matches_numpy_roi_align_on_an_ellipse():
    masks = ellipse_masks(40, [(20, 18, 9, 13), (8, 30, 5, 6)]).astype(np.float32)  # [G=2, 40, 40]
    rois = [[9.3, 4.2, 31.7, 32.9], [2.0, 23.5, 14.5, 37.0], [0.0, 0.0, 40.0, 40.0]]  # loose, tight, whole image
    matched = [0, 1, 0]
    target = _mask_targets(masks[None], [rois], [matched])[0]
    for r, (roi, g) in enumerate(zip(rois, matched)):
        reference = _np_mask_target(masks[g], roi, MASK_SIZE)
        decided = np.abs(reference - 0.5) > 1e-4  # cells exactly at the threshold may go either way
        np.testing.assert_array_equal(target[r][decided], (reference >= 0.5)[decided].astype(np.float32))
        assert 0.0 < target[r].mean() < 1.0  # a real boundary crosses every RoI
