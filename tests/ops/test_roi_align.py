"""Tests of mrcnn_tf/ops/roi_align.py against a NumPy reference of torchvision's CPU ``roi_align``.

The reference below is written from torchvision's ``roi_align(aligned=True)`` CPU kernel, not from the code
under test: per RoI, ``start = box * spatial_scale - 0.5``, size ``end - start`` (no minimum of 1 when aligned),
bin ``size / out``, sample ``start + (i + (j + 0.5) / r) * bin``; ``bilinear_interpolate`` gives 0 for a sample
with ``y < -1`` or ``y > H`` (same for ``x``), clamps ``y`` at 0 from below, and when ``floor(y) >= H - 1`` uses
``low = high = H - 1`` and ``y = low``; the ``r * r`` samples of a bin are averaged.

The reference builds, per RoI, the linear map from one feature map to the RoI's output, as a dense
``[out, out, H, W]`` matrix of bilinear weights; the output is that matrix applied to the map and the gradient
is its transpose applied to the upstream gradient, so one matrix checks both directions.

Shape letters: ``B`` batch, ``R`` RoIs per image, ``H``/``W`` map height / width, ``C`` channels,
``out`` output bins per side, ``r`` sampling ratio.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from reference import reference_roi_weights as reference_weights

from mrcnn_tf.ops.roi_align import assign_fpn_levels, crop_multilevel_roi_align, multilevel_roi_align, roi_align

OUTPUT_SIZE = 7
SAMPLING_RATIO = 2
MIN_LEVEL, MAX_LEVEL = 2, 5
IMAGE_SIZE = 64  # levels 2..5 of a 64-pixel image are 16, 8, 4, 2 cells wide
CANONICAL_SIZE = 224 * IMAGE_SIZE / 800  # FPN's 224 for 800-pixel images, scaled to this image


# ----------------------------------------------------------------------------------------------------------
# NumPy reference
# ----------------------------------------------------------------------------------------------------------


def reference_roi_weights(box, spatial_scale, height, width, output_size=OUTPUT_SIZE, sampling_ratio=SAMPLING_RATIO):
    """``tests/reference.py``'s weights ``[out, out, H, W]`` with this file's default sizes."""
    return reference_weights(box, spatial_scale, height, width, output_size, sampling_ratio)


def reference_fpn_level(box):
    """FPN equation (1) in float64, torchvision's epsilon, clipped to ``MIN_LEVEL .. MAX_LEVEL``."""
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    level = math.floor(4 + math.log2(max(math.sqrt(area), 1e-6) / CANONICAL_SIZE) + 1e-6)
    return int(np.clip(level, MIN_LEVEL, MAX_LEVEL))


def reference_weights_single_level(boxes, spatial_scale, height, width, **kwargs):
    """``[B][R]`` of :func:`reference_roi_weights` for ``boxes`` ``[B, R, 4]`` on one map."""
    return [[reference_roi_weights(box, spatial_scale, height, width, **kwargs) for box in image] for image in boxes]


def apply_weights(weights, features):
    """Reference forward: ``weights`` ``[B][R]`` of ``[out, out, H, W]``, ``features`` ``[B, H, W, C]``."""
    return np.stack(
        [np.stack([np.einsum("pqhw,hwc->pqc", w, features[b]) for w in image]) for b, image in enumerate(weights)]
    )  # [B, R, out, out, C]


def apply_weights_transposed(weights, upstream, feature_shape):
    """Reference gradient: ``d sum(upstream * output) / d features`` ``[B, H, W, C]``."""
    grad = np.zeros(feature_shape)
    for b, image in enumerate(weights):
        for r, w in enumerate(image):
            grad[b] += np.einsum("pqhw,pqc->hwc", w, upstream[b, r])
    return grad


def random_boxes(rng, count, image_size, min_side=0.05, max_side=None):
    """``[count, 4]`` boxes with log-uniform sides, centred up to a quarter of the image outside it."""
    max_side = 2.0 * image_size if max_side is None else max_side
    centre = rng.uniform(-0.25 * image_size, 1.25 * image_size, size=[count, 2])
    side = np.exp(rng.uniform(np.log(min_side), np.log(max_side), size=[count, 2]))
    return np.concatenate([centre - side / 2, centre + side / 2], axis=-1)


def test_reference_interpolates_a_linear_map_exactly():
    """The reference itself: bilinear sampling of ``f(y, x) = y + 2 x`` inside the map returns the bin centre."""
    rows, cols = np.meshgrid(np.arange(16.0), np.arange(16.0), indexing="ij")
    features = (rows + 2.0 * cols)[None, :, :, None]  # [1, H, W, 1]
    box = [3.0, 4.0, 10.0, 12.0]  # image pixels at scale 1: cells 2.5 .. 9.5 and 3.5 .. 11.5
    got = apply_weights([[reference_roi_weights(box, 1.0, 16, 16)]], features)[0, 0, :, :, 0]
    centres_y = 2.5 + (np.arange(OUTPUT_SIZE) + 0.5) * 7.0 / OUTPUT_SIZE
    centres_x = 3.5 + (np.arange(OUTPUT_SIZE) + 0.5) * 8.0 / OUTPUT_SIZE
    np.testing.assert_allclose(got, centres_y[:, None] + 2.0 * centres_x[None, :], atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# roi_align on one map
# ----------------------------------------------------------------------------------------------------------


def _single_level_boxes(rng, image_size):
    """``[2, 12, 4]``: random boxes plus ones partly outside, tiny, and bigger than the map."""
    special = np.array(
        [
            [-6.0, -3.0, 0.4 * image_size, 0.3 * image_size],  # over the top-left corner
            [0.7 * image_size, 0.8 * image_size, 1.2 * image_size, 1.1 * image_size],  # over the bottom-right
            [0.3 * image_size, 0.4 * image_size, 0.3 * image_size + 0.1, 0.4 * image_size + 0.07],  # tiny
            [-10.0, -12.0, image_size + 10.0, image_size + 7.0],  # bigger than the map
            [-3.0 * image_size, -2.0 * image_size, -1.5 * image_size, -1.2 * image_size],  # wholly off the map
            [0.5 * image_size - 1.0, -0.3 * image_size, 0.5 * image_size + 1.0, 1.3 * image_size],  # wide strip
        ]
    )
    return np.stack([np.concatenate([special, random_boxes(rng, 6, image_size)]) for _ in range(2)])


@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25, 1.0 / 3.0])
def test_roi_align_matches_reference(spatial_scale):
    rng = np.random.default_rng(0)
    features = rng.normal(size=[2, 16, 16, 3]).astype(np.float32)
    boxes = _single_level_boxes(rng, 16 / spatial_scale).astype(np.float32)
    got = roi_align(
        tf.constant(features), tf.constant(boxes), OUTPUT_SIZE, SAMPLING_RATIO, spatial_scale=spatial_scale
    ).numpy()
    weights = reference_weights_single_level(boxes, spatial_scale, 16, 16)
    np.testing.assert_allclose(got, apply_weights(weights, features), atol=1e-5)


def test_roi_align_rectangular_map_and_other_sampling_ratios():
    """Height and width must not be swapped, and ``r`` other than 2 must be honoured."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=[2, 12, 20, 3]).astype(np.float32)
    boxes = np.stack([random_boxes(rng, 8, 16) for _ in range(2)]).astype(np.float32)
    for sampling_ratio, output_size in [(1, 5), (3, 4)]:
        got = roi_align(tf.constant(features), tf.constant(boxes), output_size, sampling_ratio, 1.0).numpy()
        weights = reference_weights_single_level(
            boxes, 1.0, 12, 20, output_size=output_size, sampling_ratio=sampling_ratio
        )
        np.testing.assert_allclose(got, apply_weights(weights, features), atol=1e-5)
        cropped = _crop_one_level(features, boxes, output_size, sampling_ratio)
        np.testing.assert_allclose(cropped, apply_weights(weights, features), atol=1e-5)


def _crop_one_level(features, boxes, output_size, sampling_ratio):
    """:func:`crop_multilevel_roi_align` on one map of stride 1 (level 0, the only one, whatever the box size)."""
    return crop_multilevel_roi_align([tf.constant(features)], tf.constant(boxes), output_size, sampling_ratio, 0,
                                     224.0).numpy()


def test_roi_align_samples_at_the_map_edges():
    """One sample per RoI placed exactly on, and just beyond, the ``-1`` and ``H`` cut-offs of the kernel."""
    size = 8
    features = np.random.default_rng(2).normal(size=[1, size, size, 2]).astype(np.float32)
    # With out = r = 1 and scale 1, the box [c, ., c + 1, .] has its one sample at its centre c + 0.5, which is
    # cell index c after the alignment's -0.5; every value here is exact in float32.
    samples = [-1.0, -1.25, -0.5, size - 1.0, size - 0.5, float(size), size + 0.25]
    rows = [[c, 3.5, c + 1.0, 4.5] for c in samples]  # [7, 4] sample at (c, 3.5)
    cols = [[3.5, c, 4.5, c + 1.0] for c in samples]  # [7, 4] sample at (3.5, c)
    boxes = np.array([rows + cols], np.float32)  # [1, 14, 4]
    got = roi_align(tf.constant(features), tf.constant(boxes), 1, 1, 1.0).numpy()
    weights = reference_weights_single_level(boxes, 1.0, size, size, output_size=1, sampling_ratio=1)
    expected = apply_weights(weights, features)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(_crop_one_level(features, boxes, 1, 1), expected, atol=1e-6)
    # The reference agrees with the kernel's rule: samples at -1.25 and H + 0.25 are zero, those at -1 and H not.
    assert np.all(expected[0, [1, 6, 8, 13]] == 0.0)
    assert np.all(expected[0, [0, 5, 7, 12]] != 0.0)


# ----------------------------------------------------------------------------------------------------------
# FPN levels and multilevel_roi_align
# ----------------------------------------------------------------------------------------------------------


def _level_features(rng, batch=2, channels=3):
    """Levels ``MIN_LEVEL .. MAX_LEVEL`` of an ``IMAGE_SIZE`` image: ``[B, 64 / 2**l, 64 / 2**l, C]`` float32."""
    return [
        rng.normal(size=[batch, IMAGE_SIZE >> level, IMAGE_SIZE >> level, channels]).astype(np.float32)
        for level in range(MIN_LEVEL, MAX_LEVEL + 1)
    ]


def _continuous_level(box):
    """FPN equation (1) before the floor, in float64."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    return 4 + math.log2(math.sqrt(area) / CANONICAL_SIZE)


def _multilevel_boxes(rng, random_count=6):
    """``[2, 11 + random_count, 4]`` boxes that reach every level, some partly outside the image.

    Random boxes whose continuous level is within 1e-3 of an integer are redrawn: float32 and float64 may
    round them to different levels, which would test the rounding, not the RoIAlign.
    """
    # Level 2 below 8.96 pixels, 3 below 17.92, 4 below 35.84, 5 above.
    sides = np.array(
        [[0.5, 0.5], [4, 4], [6, 7], [12, 12], [15, 11], [20, 20], [10, 40], [30, 30], [40, 40], [60, 50], [150, 120]]
    )  # [11, 2] height, width
    images = []
    for _ in range(2):
        centre = rng.uniform(-8.0, IMAGE_SIZE + 8.0, size=[len(sides), 2])
        chosen = list(np.concatenate([centre - sides / 2, centre + sides / 2], axis=-1))
        while len(chosen) < len(sides) + random_count:
            box = random_boxes(rng, 1, IMAGE_SIZE, min_side=1.0, max_side=120.0)[0]
            level = _continuous_level(box)
            if abs(level - round(level)) > 1e-3:
                chosen.append(box)
        images.append(np.stack(chosen))
    boxes = np.stack(images).astype(np.float32)  # [B, R, 4]
    levels = {reference_fpn_level(box) for box in boxes.reshape(-1, 4)}
    assert levels == set(range(MIN_LEVEL, MAX_LEVEL + 1)), levels
    return boxes


def reference_multilevel_weights(boxes, level_features):
    """``[B][R]`` of ``(level index, [out, out, H_l, W_l] weights)``, the level chosen by FPN equation (1)."""
    weights = []
    for image in boxes:
        row = []
        for box in image:
            level = reference_fpn_level(box)
            height, width = level_features[level - MIN_LEVEL].shape[1:3]
            row.append((level - MIN_LEVEL, reference_roi_weights(box, 2.0**-level, height, width)))
        weights.append(row)
    return weights


def reference_multilevel_forward(weights, level_features):
    """Reference forward from :func:`reference_multilevel_weights` and the ``L`` maps ``[B, H_l, W_l, C]``."""
    return np.stack(
        [
            np.stack([np.einsum("pqhw,hwc->pqc", w, level_features[index][b]) for index, w in image])
            for b, image in enumerate(weights)
        ]
    )  # [B, R, out, out, C]


def reference_multilevel_gradient(weights, upstream, level_features):
    """Reference gradient of ``sum(upstream * output)`` with respect to each of the ``L`` maps."""
    grads = [np.zeros(f.shape) for f in level_features]
    for b, image in enumerate(weights):
        for r, (index, w) in enumerate(image):
            grads[index][b] += np.einsum("pqhw,pqc->hwc", w, upstream[b, r])
    return grads


def test_assign_fpn_levels_on_hand_made_boxes():
    c = CANONICAL_SIZE
    # At this offset float32 rounding makes the canonical box's level 3.9999998: torchvision's epsilon keeps it on 4.
    offset, side = np.float32(6.29), np.float32(c)
    boxes = tf.constant(
        [
            [0.0, 0.0, c, c],  # canonical size: the canonical level
            [offset, offset, offset + side, offset + side],
            [0.0, 0.0, c / 2, c / 2],  # half: one level down
            [1.3, 2.7, 1.3 + c / 2, 2.7 + c / 2],
            [0.0, 0.0, 2 * c, 2 * c],  # double: one level up
            [0.0, 0.0, c / 4, 4 * c],  # same area as the canonical box
            [0.0, 0.0, 0.95 * c, 0.95 * c],  # just below the canonical size
            [3.0, 3.0, 3.1, 3.1],  # tiny: the minimum level
            [4.0, 4.0, 4.0, 4.0],  # empty: the minimum level
            [0.0, 0.0, 1000.0, 1000.0],  # huge: the maximum level
        ],
        tf.float32,
    )
    levels = assign_fpn_levels(boxes, 2, 6, c)
    assert levels.dtype == tf.int32
    np.testing.assert_array_equal(levels.numpy(), [4, 4, 3, 3, 5, 4, 3, 2, 2, 6])
    # The paper's own numbers, and leading dimensions kept.
    paper = tf.constant([[[0, 0, 224, 224], [0, 0, 112, 112]], [[0, 0, 448, 448], [10, 20, 122, 132]]], tf.float32)
    np.testing.assert_array_equal(assign_fpn_levels(paper, 2, 5, 224.0).numpy(), [[4, 3], [5, 3]])


def test_assign_fpn_levels_matches_reference_on_random_boxes():
    boxes = _multilevel_boxes(np.random.default_rng(3), random_count=40)
    got = assign_fpn_levels(tf.constant(boxes), MIN_LEVEL, MAX_LEVEL, CANONICAL_SIZE).numpy()
    expected = np.vectorize(lambda i, r: reference_fpn_level(boxes[i, r]))(*np.indices(boxes.shape[:2]))
    np.testing.assert_array_equal(got, expected)


def _pool(method, features, boxes, output_size=OUTPUT_SIZE, sampling_ratio=SAMPLING_RATIO):
    """RoIAlign over the levels by ``method``: the gather (``"gather"``), the same under XLA (``"xla"``) or
    crop_and_resize (``"crop"``)."""
    if method == "crop":
        return crop_multilevel_roi_align(features, boxes, output_size, sampling_ratio, MIN_LEVEL, CANONICAL_SIZE)
    return multilevel_roi_align(features, boxes, output_size, sampling_ratio, MIN_LEVEL, CANONICAL_SIZE,
                                jit_compile=method == "xla")


@pytest.mark.parametrize("method", ["gather", "xla", "crop"])
def test_multilevel_roi_align_matches_reference(method):
    rng = np.random.default_rng(4)
    level_features = _level_features(rng)
    boxes = _multilevel_boxes(rng)  # every level, some boxes partly outside the image, one of 0.5 px
    got = _pool(method, [tf.constant(f) for f in level_features], tf.constant(boxes)).numpy()
    expected = reference_multilevel_forward(reference_multilevel_weights(boxes, level_features), level_features)
    assert got.shape == (2, boxes.shape[1], OUTPUT_SIZE, OUTPUT_SIZE, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------


def test_roi_align_gradient_matches_reference():
    rng = np.random.default_rng(5)
    features = tf.constant(rng.normal(size=[2, 16, 16, 3]).astype(np.float32))
    boxes = _single_level_boxes(rng, 32.0).astype(np.float32)
    upstream = rng.normal(size=[2, boxes.shape[1], OUTPUT_SIZE, OUTPUT_SIZE, 3]).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_sum(upstream * roi_align(features, tf.constant(boxes), OUTPUT_SIZE, SAMPLING_RATIO, 0.5))
    got = tape.gradient(loss, features).numpy()
    weights = reference_weights_single_level(boxes, 0.5, 16, 16)
    expected = apply_weights_transposed(weights, upstream, features.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_roi_align_gradient_matches_finite_differences():
    """The reference's own gradient, checked independently: central differences on a tiny float64 map."""
    rng = np.random.default_rng(6)
    features = rng.normal(size=[1, 4, 5, 1])
    boxes = np.array([[[-1.0, 0.5, 3.0, 4.5], [1.2, -2.0, 6.0, 2.2], [0.2, 0.3, 0.5, 0.4]]])
    upstream = rng.normal(size=[1, 3, 2, 2, 1])
    weights = reference_weights_single_level(boxes, 1.0, 4, 5, output_size=2)
    analytic = apply_weights_transposed(weights, upstream, features.shape)
    numeric = np.zeros_like(features)
    for index in np.ndindex(features.shape):
        step = np.zeros_like(features)
        step[index] = 1e-6
        plus = np.sum(upstream * apply_weights(weights, features + step))
        minus = np.sum(upstream * apply_weights(weights, features - step))
        numeric[index] = (plus - minus) / 2e-6
    np.testing.assert_allclose(analytic, numeric, atol=1e-6)
    # The code under test agrees with both on the same tiny map.
    tf_features = tf.constant(features, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(tf_features)
        loss = tf.reduce_sum(upstream.astype(np.float32) * roi_align(tf_features, tf.constant(boxes, tf.float32), 2))
    np.testing.assert_allclose(tape.gradient(loss, tf_features).numpy(), numeric, atol=1e-5)


@pytest.mark.parametrize("method", ["gather", "xla", "crop"])
def test_multilevel_roi_align_gradient_matches_reference(method):
    rng = np.random.default_rng(7)
    level_features = _level_features(rng)
    boxes = _multilevel_boxes(rng)
    upstream = rng.normal(size=[2, boxes.shape[1], OUTPUT_SIZE, OUTPUT_SIZE, 3]).astype(np.float32)
    tf_features = [tf.constant(f) for f in level_features]
    with tf.GradientTape() as tape:
        tape.watch(tf_features)
        pooled = _pool(method, tf_features, tf.constant(boxes))
        loss = tf.reduce_sum(upstream * pooled)
    got = tape.gradient(loss, tf_features)
    expected = reference_multilevel_gradient(
        reference_multilevel_weights(boxes, level_features), upstream, level_features
    )
    for level_got, level_expected in zip(got, expected):
        np.testing.assert_allclose(level_got.numpy(), level_expected, rtol=1e-5, atol=1e-5)


def _crowded_gradient_problem():
    """200 overlapping RoIs on a ``[1, 32, 32, 8]`` map, so that many samples add into the same cells."""
    rng = np.random.default_rng(8)
    features = tf.constant(rng.normal(size=[1, 32, 32, 8]).astype(np.float32))
    centre = rng.normal(16.0, 3.0, size=[200, 2])
    side = rng.uniform(3.0, 20.0, size=[200, 2])
    boxes = tf.constant(np.concatenate([centre - side / 2, centre + side / 2], -1)[None].astype(np.float32))
    upstream = tf.constant(rng.normal(size=[1, 200, OUTPUT_SIZE, OUTPUT_SIZE, 8]).astype(np.float32))
    return features, boxes, upstream


def _feature_gradient(features, boxes, upstream):
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_sum(upstream * roi_align(features, boxes, OUTPUT_SIZE, SAMPLING_RATIO))
    return tape.gradient(loss, features)


def _crop_feature_gradient(features, boxes, upstream):
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled = crop_multilevel_roi_align([features], boxes, OUTPUT_SIZE, SAMPLING_RATIO, 0, 224.0)  # stride 1
        loss = tf.reduce_sum(upstream * pooled)
    return tape.gradient(loss, features)


@pytest.mark.parametrize("gradient", [_feature_gradient, tf.function(_feature_gradient, jit_compile=True),
                                      _crop_feature_gradient], ids=["eager", "xla", "crop"])
def test_roi_align_gradient_is_deterministic(gradient):
    features, boxes, upstream = _crowded_gradient_problem()
    first = gradient(features, boxes, upstream).numpy()
    assert np.count_nonzero(first) > first.size // 4
    for _ in range(4):
        assert np.array_equal(gradient(features, boxes, upstream).numpy(), first)


# ----------------------------------------------------------------------------------------------------------
# XLA and dtypes
# ----------------------------------------------------------------------------------------------------------


def _pool_and_gradient(level_features, boxes, upstream):
    with tf.GradientTape() as tape:
        tape.watch(level_features)
        pooled = multilevel_roi_align(level_features, boxes, OUTPUT_SIZE, SAMPLING_RATIO, MIN_LEVEL, CANONICAL_SIZE)
        loss = tf.reduce_sum(upstream * pooled)
    return pooled, tape.gradient(loss, level_features)


def test_multilevel_roi_align_compiles_under_xla():
    rng = np.random.default_rng(9)
    level_features = [tf.constant(f) for f in _level_features(rng)]
    boxes = tf.constant(_multilevel_boxes(rng))
    upstream = tf.constant(rng.normal(size=[2, boxes.shape[1], OUTPUT_SIZE, OUTPUT_SIZE, 3]).astype(np.float32))
    eager_pooled, eager_grads = _pool_and_gradient(level_features, boxes, upstream)
    jit_pooled, jit_grads = tf.function(_pool_and_gradient, jit_compile=True)(level_features, boxes, upstream)
    np.testing.assert_allclose(jit_pooled.numpy(), eager_pooled.numpy(), atol=1e-5)
    for jit_grad, eager_grad in zip(jit_grads, eager_grads):
        np.testing.assert_allclose(jit_grad.numpy(), eager_grad.numpy(), atol=1e-5)


def test_float16_features_give_float16_output():
    rng = np.random.default_rng(10)
    level_features = _level_features(rng)
    boxes = tf.constant(_multilevel_boxes(rng))
    rois = boxes.shape[1]

    single = roi_align(tf.constant(level_features[0], tf.float16), boxes, OUTPUT_SIZE, SAMPLING_RATIO, 0.25)
    assert single.dtype == tf.float16
    assert single.shape == (2, rois, OUTPUT_SIZE, OUTPUT_SIZE, 3)
    single_32 = roi_align(tf.constant(level_features[0]), boxes, OUTPUT_SIZE, SAMPLING_RATIO, 0.25)
    np.testing.assert_allclose(single.numpy().astype(np.float32), single_32.numpy(), atol=1e-2)

    half = [tf.constant(f, tf.float16) for f in level_features]
    pooled = multilevel_roi_align(half, boxes, OUTPUT_SIZE, SAMPLING_RATIO, MIN_LEVEL, CANONICAL_SIZE)
    assert pooled.dtype == tf.float16
    assert pooled.shape == (2, rois, OUTPUT_SIZE, OUTPUT_SIZE, 3)
    pooled_32 = multilevel_roi_align(
        [tf.constant(f) for f in level_features], boxes, OUTPUT_SIZE, SAMPLING_RATIO, MIN_LEVEL, CANONICAL_SIZE
    )
    np.testing.assert_allclose(pooled.numpy().astype(np.float32), pooled_32.numpy(), atol=1e-2)
    cropped = _pool("crop", half, boxes)
    assert cropped.dtype == tf.float16
    np.testing.assert_allclose(cropped.numpy().astype(np.float32), pooled_32.numpy(), atol=1e-2)


def test_crop_roi_align_of_no_rois_and_of_one_level_only():
    """Levels without RoIs (here all but one) and an empty RoI set give correctly shaped outputs."""
    rng = np.random.default_rng(11)
    level_features = [tf.constant(f) for f in _level_features(rng)]
    tiny = tf.constant([[[10.0, 10.0, 12.0, 12.0]] * 3, [[30.0, 20.0, 31.0, 22.0]] * 3])  # [2, 3, 4], all level 2
    np.testing.assert_allclose(_pool("crop", level_features, tiny).numpy(),
                               _pool("gather", level_features, tiny).numpy(), atol=1e-5)
    empty = _pool("crop", level_features, tf.zeros([2, 0, 4]))
    assert empty.shape == (2, 0, OUTPUT_SIZE, OUTPUT_SIZE, 3)
