"""Tests for mrcnn_tf/data/instances.py: 8-connected instances, tight boxes, RGB conversion, resize and padding.

Masks are hand-made (rectangles, single pixels) or ellipses from ``conftest``; boxes ``[y1, x1, y2, x2]`` with an
exclusive end, worked out in comments.
"""
import logging

import numpy as np
import pytest
from skimage import measure

from conftest import ellipse_image, ellipse_masks
from mrcnn_tf.data.instances import label_instances, make_example, mask_to_box, to_rgb
from mrcnn_tf.errors import DataError


def _mask_set(masks):
    """Instance masks ``[I, H, W]`` as a set of hashable 0/1 byte strings (order-free comparison)."""
    return {(np.asarray(m) > 0).astype(np.uint8).tobytes() for m in masks}


def _random_blobs(seed, size=64, density=0.06):
    """A binary ``[size, size]`` image of irregular blobs: random seeds grown by one 3x3 step, then thinned."""
    rng = np.random.default_rng(seed)
    seeds = rng.random((size, size)) < density
    grown = np.zeros_like(seeds)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= np.roll(np.roll(seeds, dy, axis=0), dx, axis=1)
    return (grown & (rng.random((size, size)) < 0.55)).astype(np.uint8) * 255


# --- label_instances -------------------------------------------------------------------------------------------


def test_two_separate_blobs_are_two_instances():
    mask = np.zeros((32, 32), np.uint8)
    mask[2:6, 3:9] = 255  # 24 px
    mask[20:30, 15:25] = 255  # 100 px
    instances = label_instances(mask)
    assert instances.shape == (2, 32, 32) and instances.dtype == np.uint8
    assert set(np.unique(instances)) <= {0, 1}
    big, small = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    big[20:30, 15:25] = 1
    small[2:6, 3:9] = 1
    np.testing.assert_array_equal(instances[0], big)
    np.testing.assert_array_equal(instances[1], small)


def test_blobs_touching_only_diagonally_are_one_instance():
    mask = np.zeros((16, 16), np.uint8)
    mask[2:5, 2:5] = 1  # ends at pixel (4, 4)
    mask[5:8, 5:8] = 1  # starts at pixel (5, 5): corner contact only
    assert measure.label(mask, connectivity=1).max() == 2  # the case is real: 4-connectivity splits it
    instances = label_instances(mask)
    assert instances.shape == (1, 16, 16)
    np.testing.assert_array_equal(instances[0], mask)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_skimage_8_connectivity_on_random_blobs(seed):
    mask = _random_blobs(seed)
    reference = measure.label(mask > 0, connectivity=2)
    expected = [reference == i for i in range(1, reference.max() + 1)]
    assert len(expected) > 5  # enough regions for the comparison to mean something
    instances = label_instances(mask)
    assert len(instances) == len(expected)
    assert _mask_set(instances) == _mask_set(expected)
    np.testing.assert_array_equal(instances.sum(axis=0), (mask > 0).astype(np.int64))  # a partition


def test_instances_come_largest_first():
    mask = np.zeros((40, 40), np.uint8)
    mask[1:3, 1:3] = 1  # 4 px, first in raster order
    mask[10:15, 1:5] = 1  # 20 px
    mask[25:35, 20:35] = 1  # 150 px, last in raster order
    sizes = label_instances(mask).sum(axis=(1, 2)).tolist()
    assert sizes == [150, 20, 4]


def test_empty_mask_gives_no_instance():
    instances = label_instances(np.zeros((24, 40), np.uint8))
    assert instances.shape == (0, 24, 40)
    assert instances.dtype == np.uint8


# --- mask_to_box -----------------------------------------------------------------------------------------------


def test_mask_to_box_is_tight_with_exclusive_end():
    mask = np.zeros((20, 20), np.uint8)
    mask[3, 4:9] = 1  # rows 3..7, cols 4..8 in an L shape
    mask[3:8, 4] = 1
    box = mask_to_box(mask)
    assert box.dtype == np.float32
    np.testing.assert_array_equal(box, [3, 4, 8, 9])


def test_mask_to_box_of_a_single_pixel_is_one_pixel_wide():
    mask = np.zeros((10, 10), np.uint8)
    mask[6, 2] = 1
    np.testing.assert_array_equal(mask_to_box(mask), [6, 2, 7, 3])


# --- to_rgb ----------------------------------------------------------------------------------------------------


def _ramp(height=8, width=6):
    return np.arange(height * width, dtype=np.uint8).reshape(height, width)


@pytest.mark.parametrize("shape_suffix", [(), (1,)], ids=["HW", "HW1"])
def test_to_rgb_repeats_a_grey_image(shape_suffix):
    grey = _ramp()
    rgb = to_rgb(grey.reshape(grey.shape + shape_suffix), "grey.tif")
    assert rgb.shape == (8, 6, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], grey)


def test_to_rgb_drops_the_fourth_channel():
    rgba = np.stack([_ramp(), _ramp() + 100, _ramp() + 200, np.full((8, 6), 7, np.uint8)], axis=-1)
    rgb = to_rgb(rgba, "rgba.png")
    assert rgb.shape == (8, 6, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, rgba[..., :3])


def test_to_rgb_keeps_a_colour_image():
    image = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(image, "rgb.tif"), image)


def test_to_rgb_rescales_uint16_to_the_full_uint8_range():
    image = np.array([[1000, 1500], [2000, 3000]], np.uint16)
    rgb = to_rgb(image, "deep.tif")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    # (v - 1000) * 255 / 2000: 0, 63.75 -> 64, 127.5 -> 128 (round half to even), 255
    np.testing.assert_array_equal(rgb[..., 0], [[0, 64], [128, 255]])
    np.testing.assert_array_equal(rgb[..., 1], rgb[..., 0])


def test_to_rgb_of_a_constant_uint16_image_is_black_not_nan():
    rgb = to_rgb(np.full((4, 4), 4000, np.uint16), "flat.tif")
    np.testing.assert_array_equal(rgb, np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("empty", [np.zeros((0, 0), np.uint8), np.zeros((0, 5, 3), np.uint8)])
def test_to_rgb_of_an_empty_array_names_the_source(empty):
    with pytest.raises(DataError, match="slice_7.tif"):
        to_rgb(empty, "patient/slice_7.tif")


def test_to_rgb_rejects_two_channels_naming_the_source():
    with pytest.raises(DataError, match="two.tif"):
        to_rgb(np.zeros((4, 4, 2), np.uint8), "two.tif")


def test_to_rgb_rescales_a_finite_float_image():
    rgb = to_rgb(np.array([[-1.0, 0.0], [1.0, 3.0]], np.float64), "float.tif")
    np.testing.assert_array_equal(rgb[..., 0], [[0, 64], [128, 255]])  # (v + 1) * 255 / 4


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_to_rgb_of_a_non_finite_pixel_names_the_source(value):
    image = np.ones((4, 4, 3), np.float32)
    image[2, 1, 2] = value
    with pytest.raises(DataError, match=r"^scans/float\.tif: 1 pixel value\(s\) are NaN or infinite"):
        to_rgb(image, "scans/float.tif")


# --- make_example ----------------------------------------------------------------------------------------------

ELLIPSES_96 = [(30, 30, 12, 18), (70, 66, 8, 10)]  # (cy, cx, ry, rx), well apart, first one larger


def test_resize_keeps_boxes_consistent_with_the_resized_masks():
    image, masks = ellipse_image(96, ELLIPSES_96)
    example = make_example(image, masks, np.array([1, 1]), image_size=64, max_instances=4, source="s.tif")
    assert example["image"].shape == (64, 64, 3) and example["image"].dtype == np.uint8
    assert example["gt_masks"].shape == (4, 64, 64)
    for i in range(2):
        assert example["gt_masks"][i].any()
        np.testing.assert_array_equal(example["gt_boxes"][i], mask_to_box(example["gt_masks"][i]))
        # And the resized box is the original scaled by 64/96, within a pixel of rounding.
        np.testing.assert_allclose(example["gt_boxes"][i], mask_to_box(masks[i]) * 64 / 96, atol=1.0)
    # The bright ellipses are still where the masks say in the resized image.
    assert example["image"][example["gt_masks"][0] > 0].mean() > 150


def test_pads_to_max_instances_with_class_minus_one_and_zeros():
    image, masks = ellipse_image(64, [(20, 20, 6, 8), (45, 45, 5, 5)])
    example = make_example(image, masks, np.array([1, 1]), image_size=64, max_instances=5, source="s.tif")
    assert example["gt_boxes"].shape == (5, 4) and example["gt_boxes"].dtype == np.float32
    assert example["gt_classes"].dtype == np.int32
    assert example["gt_masks"].shape == (5, 64, 64) and example["gt_masks"].dtype == np.uint8
    np.testing.assert_array_equal(example["gt_classes"], [1, 1, -1, -1, -1])
    np.testing.assert_array_equal(example["gt_boxes"][2:], 0)
    np.testing.assert_array_equal(example["gt_masks"][2:], 0)
    np.testing.assert_array_equal(example["gt_masks"][:2], masks)  # same size: no resize, 0/1 kept
    np.testing.assert_array_equal(example["image"], image)


def test_no_instance_gives_only_padding():
    image, _ = ellipse_image(64, [])
    example = make_example(image, np.zeros((0, 64, 64), np.uint8), np.zeros((0,), np.int32), 64, 3, "free.tif")
    np.testing.assert_array_equal(example["gt_classes"], [-1, -1, -1])
    assert not example["gt_boxes"].any() and not example["gt_masks"].any()


def test_beyond_max_instances_the_largest_are_kept(caplog):
    ellipses = [(12, 12, 9, 9), (12, 48, 6, 6), (48, 12, 3, 3), (48, 48, 2, 2)]  # largest first
    image, masks = ellipse_image(64, ellipses)
    with caplog.at_level(logging.WARNING):
        example = make_example(image, masks, np.array([1, 1, 1, 1]), 64, max_instances=2, source="many.tif")
    np.testing.assert_array_equal(example["gt_classes"], [1, 1])
    np.testing.assert_array_equal(example["gt_masks"], masks[:2])
    assert "many.tif" in caplog.text


def test_beyond_max_instances_the_smallest_are_dropped_whatever_the_input_order():
    # The docstring promises "beyond max_instances the smallest are dropped" and does not ask callers to sort
    # (lgg.load_slice happens to pass them largest first; other readers need not).
    ellipses = [(48, 48, 2, 2), (12, 12, 9, 9), (48, 12, 3, 3), (12, 48, 6, 6)]  # small, largest, small, large
    image, masks = ellipse_image(64, ellipses)
    example = make_example(image, masks, np.array([1, 1, 1, 1]), 64, max_instances=2, source="many.tif")
    kept_sizes = sorted(example["gt_masks"].sum(axis=(1, 2)).tolist(), reverse=True)
    assert kept_sizes == sorted(masks.sum(axis=(1, 2)).tolist(), reverse=True)[:2]


def test_an_instance_that_vanishes_in_the_resize_is_dropped():
    # INTER_NEAREST 96 -> 64 samples source rows/cols floor(1.5 * d): 0, 1, 3, 4, 6, ... never 2.
    masks = ellipse_masks(96, [(50, 50, 10, 10)])
    dot = np.zeros((1, 96, 96), np.uint8)
    dot[0, 2, 2] = 1
    image, _ = ellipse_image(96, [])
    example = make_example(image, np.concatenate([dot, masks]), np.array([1, 1]), 64, 3, "dot.tif")
    np.testing.assert_array_equal(example["gt_classes"], [1, -1, -1])
    np.testing.assert_allclose(example["gt_boxes"][0], mask_to_box(masks[0]) * 64 / 96, atol=1.0)


def test_mask_and_image_of_different_sizes_name_the_file():
    image, _ = ellipse_image(64, [])
    masks = ellipse_masks(48, [(20, 20, 5, 5)])
    with pytest.raises(DataError, match="TCGA_XX_0001_3.tif"):
        make_example(image, masks, np.array([1]), 64, 4, "TCGA_XX_0001_3.tif")
