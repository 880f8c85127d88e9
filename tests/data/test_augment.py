"""Tests for mrcnn_tf/data/augment.py: shapes in tf.data, identity, flip, rotation/scale convention, tight boxes,
vanished instances, determinism, uint8 clipping.

Examples come from ``make_example`` on ellipse images (``conftest``) or hand-made masks. Boxes ``[y1, x1, y2, x2]``
with an exclusive end, worked out in comments. Shape letters: ``S`` image size, ``G`` max instances.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import ellipse_image
from mrcnn_tf.data import augment
from mrcnn_tf.data.instances import make_example, mask_to_box

S, G = 64, 4
KEYS = ("images", "gt_boxes", "gt_classes", "gt_masks")
OFF = dict(flip=False, max_rotation_deg=0.0, scale_range=(1.0, 1.0), brightness=0.0, contrast=0.0)
STRONG = dict(flip=True, max_rotation_deg=40.0, scale_range=(0.7, 1.4), brightness=0.2, contrast=0.3)


def _example(ellipses=((20, 24, 8, 12), (50, 52, 6, 9), (5, 60, 4, 3)), seed=0, size=S):
    """A pipeline-style example (keys as in a batch) with one instance per ellipse ``(cy, cx, ry, rx)``."""
    image, masks = ellipse_image(size, list(ellipses), seed=seed)
    decoded = make_example(image, masks, [1] * len(masks), size, G, "test")
    return {
        "images": decoded["image"], "gt_boxes": decoded["gt_boxes"],
        "gt_classes": decoded["gt_classes"], "gt_masks": decoded["gt_masks"],
    }


def _numpy(example):
    return {key: np.asarray(example[key]) for key in KEYS}


def _assert_same(a, b):
    for key in KEYS:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def _seed(value):
    return tf.constant([value, 17], tf.int64)


def _assert_consistent(example):
    """Every valid slot: 0/1 mask, box == NumPy tight box, all pixels inside; every padding slot all zero."""
    for box, label, mask in zip(example["gt_boxes"], example["gt_classes"], example["gt_masks"]):
        assert set(np.unique(mask)) <= {0, 1}
        if label == -1:
            assert not mask.any() and not box.any()
            continue
        assert label == 1 and mask.any()
        np.testing.assert_array_equal(box, mask_to_box(mask))
        y1, x1, y2, x2 = box.astype(int)
        assert mask.sum() == mask[y1:y2, x1:x2].sum()


# --- shapes, identity, determinism ------------------------------------------------------------------------------


def test_tf_data_map_keeps_static_shapes_and_dtypes():
    examples = [_example(seed=i) for i in range(3)]
    arrays = {key: np.stack([e[key] for e in examples]) for key in KEYS}
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    augmented = dataset.enumerate().map(augment.make_augmenter(3, **STRONG))
    assert augmented.element_spec == dataset.element_spec  # static [S, S, 3] uint8, [G, 4] float32, ...
    for out in augmented.batch(3):
        assert out["images"].shape == (3, S, S, 3) and out["images"].dtype == tf.uint8
        assert out["gt_boxes"].shape == (3, G, 4) and out["gt_boxes"].dtype == tf.float32
        assert out["gt_classes"].shape == (3, G) and out["gt_classes"].dtype == tf.int32
        assert out["gt_masks"].shape == (3, G, S, S) and out["gt_masks"].dtype == tf.uint8


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_everything_off_returns_the_example_unchanged(seed):
    example = _example()
    _assert_same(augment.augment_example(example, _seed(seed), **OFF), example)


def test_same_seed_same_output_different_seed_different_output():
    example = _example()
    first = augment.augment_example(example, _seed(5), **STRONG)
    _assert_same(augment.augment_example(example, _seed(5), **STRONG), first)
    other = augment.augment_example(example, _seed(6), **STRONG)
    assert not np.array_equal(other["images"].numpy(), first["images"].numpy())


def test_augmenter_seeds_differ_by_index_and_repeat_by_index():
    example = _example()
    augmenter = augment.make_augmenter(11, **STRONG)
    at_0, at_1 = augmenter(tf.constant(0, tf.int64), example), augmenter(tf.constant(1, tf.int64), example)
    assert not np.array_equal(at_0["images"].numpy(), at_1["images"].numpy())
    _assert_same(augment.make_augmenter(11, **STRONG)(tf.constant(0, tf.int64), example), at_0)
    # Folding an epoch into the base seed, as the docstring suggests, gives a new draw for the same index.
    epoch_1 = augment.make_augmenter(tf.random.experimental.stateless_fold_in([11, 0], 1), **STRONG)
    assert not np.array_equal(epoch_1(tf.constant(0, tf.int64), example)["images"].numpy(), at_0["images"].numpy())


# --- flip --------------------------------------------------------------------------------------------------------


def test_flip_example_maps_box_and_mask():
    mask = np.zeros((1, 32, 32), np.uint8)
    mask[0, 3:6, 4:10] = 1  # box [3, 4, 6, 10]
    image = np.arange(32 * 32 * 3, dtype=np.int64).reshape(32, 32, 3).astype(np.uint8)
    decoded = make_example(image, mask, [1], 32, 2, "test")
    example = {"images": decoded["image"], "gt_boxes": decoded["gt_boxes"],
               "gt_classes": decoded["gt_classes"], "gt_masks": decoded["gt_masks"]}
    out = _numpy(augment.flip_example(example))
    # [y1, x1, y2, x2] -> [y1, S - x2, y2, S - x1] = [3, 32 - 10, 6, 32 - 4] = [3, 22, 6, 28].
    np.testing.assert_array_equal(out["gt_boxes"], [[3, 22, 6, 28], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out["gt_masks"], decoded["gt_masks"][:, :, ::-1])
    np.testing.assert_array_equal(out["images"], image[:, ::-1])
    np.testing.assert_array_equal(out["gt_classes"], [1, -1])
    _assert_consistent(out)


def test_flip_option_flips_some_seeds_and_not_others():
    example = _example()
    flipped = _numpy(augment.flip_example(example))
    only_flip = dict(OFF, flip=True)
    outcomes = []
    for seed in range(20):
        out = _numpy(augment.augment_example(example, _seed(seed), **only_flip))
        is_flipped = all(np.array_equal(out[k], flipped[k]) for k in KEYS)
        assert is_flipped or all(np.array_equal(out[k], example[k]) for k in KEYS)
        outcomes.append(is_flipped)
    assert 3 <= sum(outcomes) <= 17  # both outcomes occur; for p = 0.5, P(outside 3..17 of 20) = 4e-4


# --- rotation and scale: the convention ----------------------------------------------------------------------------


def _asymmetric_example(size=8):
    """An L-shaped mask (no rotational symmetry) and an image whose every pixel is distinct."""
    mask = np.zeros((1, size, size), np.uint8)
    mask[0, 1:6, 1] = 1
    mask[0, 5, 1:4] = 1
    image = np.arange(size * size * 3).reshape(size, size, 3).astype(np.uint8)
    return {"images": image, "gt_boxes": mask_to_box(mask[0])[None], "gt_classes": np.array([1], np.int32),
            "gt_masks": mask}


@pytest.mark.parametrize("angle, turns", [(90.0, 1), (180.0, 2), (-90.0, 3)])
def test_right_angle_rotation_matches_np_rot90(angle, turns):
    """About ((S - 1) / 2, (S - 1) / 2), a quarter turn permutes pixels exactly; positive = np.rot90 (k = 1)."""
    example = _asymmetric_example()
    out = _numpy(augment.rotate_and_scale_example(example, angle, 1.0))
    expected_mask = np.rot90(example["gt_masks"][0], turns)
    np.testing.assert_array_equal(out["gt_masks"][0], expected_mask)
    np.testing.assert_array_equal(out["images"], np.rot90(example["images"], turns, axes=(0, 1)))
    np.testing.assert_array_equal(out["gt_boxes"][0], mask_to_box(expected_mask))


def test_scale_enlarges_about_the_centre():
    mask = np.zeros((1, 32, 32), np.uint8)
    mask[0, 12:20, 12:20] = 1  # 8 x 8, centred on 15.5 = (32 - 1) / 2
    example = {"images": np.zeros((32, 32, 3), np.uint8), "gt_boxes": np.array([[12, 12, 20, 20]], np.float32),
               "gt_classes": np.array([1], np.int32), "gt_masks": mask}
    out = _numpy(augment.rotate_and_scale_example(example, 0.0, 2.0))
    # Output row o reads input row 15.5 + (o - 15.5) / 2: o = 8 -> 11.75 -> 12 (in), o = 7 -> 11.25 -> 11 (out),
    # o = 23 -> 19.25 -> 19 (in), o = 24 -> 19.75 -> 20 (out): rows and columns 8..23, box [8, 8, 24, 24].
    np.testing.assert_array_equal(out["gt_boxes"], [[8, 8, 24, 24]])
    assert out["gt_masks"].sum() == 16 * 16


def test_image_and_masks_move_together():
    example = _example()
    example["images"] = np.repeat(example["gt_masks"].max(axis=0)[..., None] * 255, 3, axis=2).astype(np.uint8)
    for seed in range(4):
        out = _numpy(augment.augment_example(example, _seed(seed), **dict(STRONG, brightness=0.0, contrast=0.0)))
        union = out["gt_masks"].max(axis=0).astype(bool)
        # Nearest-neighbour mask vs bilinear image: the nearest input pixel has bilinear weight >= 1/4.
        assert out["images"][union].min() >= 63
        assert out["images"][~union].max() <= 192
        assert union.any()


# --- boxes from masks, vanished instances --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_augmentation_keeps_boxes_tight(seed):
    # Ellipses at the border, so that rotation and scale clip or remove some of them.
    example = _example(ellipses=((20, 24, 8, 12), (58, 50, 6, 9), (4, 60, 4, 3)), seed=seed)
    out = _numpy(augment.augment_example(example, _seed(seed), **STRONG))
    _assert_consistent(out)


def test_instance_moved_out_becomes_padding():
    mask = np.zeros((2, 32, 32), np.uint8)
    mask[0, 10:22, 12:20] = 1  # central: stays
    mask[1, 0:2, 0:2] = 1  # corner pixels are ~21 px from the centre; a 45-degree turn puts them beyond 15.5
    decoded = make_example(np.zeros((32, 32, 3), np.uint8), mask, [1, 1], 32, 3, "test")
    example = {"images": decoded["image"], "gt_boxes": decoded["gt_boxes"],
               "gt_classes": decoded["gt_classes"], "gt_masks": decoded["gt_masks"]}
    assert list(example["gt_classes"]) == [1, 1, -1]
    out = _numpy(augment.rotate_and_scale_example(example, 45.0, 1.0))
    np.testing.assert_array_equal(out["gt_classes"], [1, -1, -1])
    np.testing.assert_array_equal(out["gt_boxes"][1:], 0)
    assert not out["gt_masks"][1:].any()
    _assert_consistent(out)


def test_update_instances_from_masks_drops_empty_and_clears_padding():
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[0, 2:5, 7:9] = 1  # box [2, 7, 5, 9]
    masks[2, 1, 1] = 1  # a stray pixel in a padding slot must not survive
    example = {"images": np.zeros((16, 16, 3), np.uint8),
               "gt_boxes": np.array([[0, 0, 1, 1], [3, 3, 6, 6], [1, 1, 2, 2]], np.float32),
               "gt_classes": np.array([1, 1, -1], np.int32), "gt_masks": masks}
    out = _numpy(augment.update_instances_from_masks(example))
    np.testing.assert_array_equal(out["gt_classes"], [1, -1, -1])  # slot 1: class 1 but empty mask
    np.testing.assert_array_equal(out["gt_boxes"], [[2, 7, 5, 9], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert not out["gt_masks"][1:].any()


def test_tight_boxes_match_numpy_reference():
    rng = np.random.default_rng(0)
    masks = (rng.random((6, 20, 24)) < 0.01).astype(np.uint8)
    masks[0] = 0
    masks[1, 19, 23] = 1  # last row and column: exclusive end 20, 24
    boxes = augment.tight_boxes(masks).numpy()
    np.testing.assert_array_equal(boxes[0], 0)
    for box, mask in zip(boxes[1:], masks[1:]):
        np.testing.assert_array_equal(box, mask_to_box(mask))


def test_tumour_free_example_passes_through():
    example = _example(ellipses=())
    out = _numpy(augment.augment_example(example, _seed(1), **STRONG))
    np.testing.assert_array_equal(out["gt_classes"], -1)
    assert not out["gt_boxes"].any() and not out["gt_masks"].any()


# --- photometric -------------------------------------------------------------------------------------------------


def test_brightness_and_contrast_clip_instead_of_wrapping():
    image = np.array([[[5, 5, 5], [250, 250, 250]]], np.uint8)  # mean 127.5
    up = augment.adjust_brightness_contrast(image, 20.0, 1.0).numpy()
    down = augment.adjust_brightness_contrast(image, -20.0, 1.0).numpy()
    stretched = augment.adjust_brightness_contrast(image, 0.0, 0.5).numpy()
    assert up.dtype == np.uint8
    np.testing.assert_array_equal(up[0, :, 0], [25, 255])  # 270 clips to 255, not 14
    np.testing.assert_array_equal(down[0, :, 0], [0, 230])  # -15 clips to 0, not 241
    np.testing.assert_array_equal(stretched[0, :, 0], [66, 189])  # 127.5 -+ 122.5 / 2 = 66.25, 188.75


def test_strong_photometric_keeps_uint8_range_and_grey_order():
    example = _example()
    out = augment.augment_example(example, _seed(2), **dict(OFF, brightness=1.0, contrast=1.0))
    assert out["images"].dtype == tf.uint8
    image = out["images"].numpy().astype(int)
    assert 0 <= image.min() and image.max() <= 255
    # The geometry is off, so the output is a monotone (non-decreasing or constant) remap of the input grey levels.
    order = np.argsort(example["images"].ravel(), kind="stable")
    remapped = image.ravel()[order]
    assert np.all(np.diff(remapped) >= 0) or np.all(np.diff(remapped) <= 0)


# --- crops ------------------------------------------------------------------------------------------------------

def _content_example():
    """A 64-pixel example whose content (non-zero pixels) is the block rows 10-29, columns 30-59, holding an
    instance at rows 12-15, columns 32-37 and one at rows 26-27, columns 56-57."""
    image = np.zeros((S, S, 3), np.uint8)
    image[10:30, 30:60] = 90
    masks = np.zeros((2, S, S), np.uint8)
    masks[0, 12:16, 32:38] = 1
    masks[1, 26:28, 56:58] = 1
    decoded = make_example(image, masks, [1, 1], S, G, "test")
    return {"images": decoded["image"], "gt_boxes": decoded["gt_boxes"], "gt_classes": decoded["gt_classes"],
            "gt_masks": decoded["gt_masks"]}


def test_crop_windows_are_centred_on_the_content_inside_the_image():
    example = _content_example()
    corners = set()
    for value in range(60):
        crop = _numpy(augment.crop_example(example, 32, _seed(value)))
        assert crop["images"].shape == (32, 32, 3) and crop["gt_masks"].shape == (G, 32, 32)
        # the centre is drawn in rows 10-30, columns 30-60 (the content's box, exclusive ends): the window starts at
        # row round(centre - 16) clipped to 0-32, so in rows 0-14, and in columns 14-32 (past 32 it leaves the image)
        image = np.asarray(example["images"])
        top, left = next((t, l) for t in range(S - 31) for l in range(S - 31)
                         if np.array_equal(image[t:t + 32, l:l + 32], crop["images"])
                         and np.array_equal(np.asarray(example["gt_masks"])[:, t:t + 32, l:l + 32],
                                            crop["gt_masks"]))
        assert 0 <= top <= 14 and 14 <= left <= 32
        # so it holds rows 14-29 and columns 32-45 at least: never a window of background alone
        assert (crop["images"][..., 0] > 0).sum() >= 16 * 14
        _assert_consistent(crop)
        corners.add(left)
    assert len(corners) > 5  # the window moves


def test_crop_cuts_masks_with_the_image_and_drops_instances_cut_away():
    example = _content_example()
    seen = {0: 0, 1: 0}
    for value in range(40):
        crop = _numpy(augment.crop_example(example, 32, _seed(value)))
        kept = crop["gt_classes"] >= 0
        seen[0] += kept[0]
        seen[1] += kept[1]
        _assert_consistent(crop)
        assert not kept[2:].any()
    # every window (columns 14-32 on) holds columns 32-37 of the first; the second, at columns 56-57, only those
    # starting past column 24: it is in some windows and cut away in the others
    assert seen[0] == 40 and 0 < seen[1] < 40


def test_crop_finds_the_content_after_brightness_lifted_the_background():
    example = _content_example()
    lifted = dict(example, images=(np.asarray(example["images"]) + 20).astype(np.uint8))  # background 20, not 0
    for value in range(20):
        plain = _numpy(augment.crop_example(example, 32, _seed(value)))
        crop = _numpy(augment.crop_example(lifted, 32, _seed(value)))
        np.testing.assert_array_equal(crop["images"], plain["images"] + 20)  # the same window
        np.testing.assert_array_equal(crop["gt_masks"], plain["gt_masks"])


def test_crop_is_the_same_for_the_same_seed_and_whole_at_full_size():
    example = _content_example()
    _assert_same(augment.crop_example(example, 32, _seed(3)), augment.crop_example(example, 32, _seed(3)))
    _assert_same(augment.crop_example(example, S, _seed(3)), example)


def test_crop_of_an_empty_image_draws_over_the_whole_image():
    example = _example(ellipses=())
    example["images"] = np.zeros_like(example["images"])
    crop = _numpy(augment.crop_example(example, 32, _seed(0)))
    assert crop["images"].shape == (32, 32, 3) and (crop["gt_classes"] == -1).all()
