"""Tests for mrcnn_tf/ops/masks.py: hand-checked pastes and an independent NumPy paste.

The NumPy reference samples the mask bilinearly, for each output pixel centre ``p + 0.5``, at the mask coordinate
``(p + 0.5 - y1) / (y2 - y1) * M - 0.5`` (same for x), from its four neighbouring cells, with cells outside the
mask counting as 0.

Shape letters: ``B`` batch, ``D`` detections, ``M`` mask side, ``H``/``W`` image size.
"""
import numpy as np
import pytest

from mrcnn_tf.ops.masks import paste_masks

M = 28


def _np_paste(mask, box, height, width):
    """Paste one ``[M, M]`` mask into ``[height, width]`` by bilinear sampling with zero padding."""
    size = mask.shape[0]
    y1, x1, y2, x2 = (float(v) for v in box)

    def cell(i, j):
        return float(mask[i, j]) if 0 <= i < size and 0 <= j < size else 0.0

    out = np.zeros((height, width))
    for py in range(height):
        cy = (py + 0.5 - y1) / (y2 - y1) * size - 0.5
        i0 = int(np.floor(cy))
        fy = cy - i0
        for px in range(width):
            cx = (px + 0.5 - x1) / (x2 - x1) * size - 0.5
            j0 = int(np.floor(cx))
            fx = cx - j0
            out[py, px] = ((1 - fy) * (1 - fx) * cell(i0, j0) + (1 - fy) * fx * cell(i0, j0 + 1)
                           + fy * (1 - fx) * cell(i0 + 1, j0) + fy * fx * cell(i0 + 1, j0 + 1))
    return out


def _paste(masks, boxes, height, width):
    return paste_masks(np.asarray(masks, np.float32), np.asarray(boxes, np.float32), height, width).numpy()


def test_all_ones_mask_fills_its_box_and_nothing_else():
    pasted = _paste(np.ones((1, 1, M, M)), [[[8, 8, 24, 24]]], 32, 32)[0, 0]
    assert pasted.shape == (32, 32) and pasted.dtype == np.float32
    # Pixel 8 (centre 8.5) sits at mask coordinate 0.5 / 16 * 28 - 0.5 = 0.375, pixel 23 at 26.625: both between
    # two cells of ones. Pixel 7 sits at -1.375 and pixel 24 at 28.375: no cell within 1, so exactly 0.
    np.testing.assert_allclose(pasted[8:24, 8:24], 1.0, atol=1e-5)
    outside = np.ones((32, 32), bool)
    outside[6:26, 6:26] = False  # two pixels or more away from the box
    np.testing.assert_array_equal(pasted[outside], 0.0)
    np.testing.assert_array_equal(pasted[7, :], 0.0)
    np.testing.assert_array_equal(pasted[:, 24], 0.0)


def test_left_half_mask_lands_on_left_half_of_box():
    mask = np.zeros((M, M), np.float32)
    mask[:, :14] = 1.0
    pasted = _paste(mask[None, None], [[[8, 8, 24, 24]]], 32, 32)[0, 0]
    # Column 15 (centre 15.5): 7.5 / 16 * 28 - 0.5 = 12.625, between cells 12 and 13 (ones) -> 1.
    # Column 16 (centre 16.5): 14.375, between cells 14 and 15 (zeros) -> 0.
    np.testing.assert_allclose(pasted[8:24, 8:16], 1.0, atol=1e-5)
    np.testing.assert_array_equal(pasted[:, 16:], 0.0)
    np.testing.assert_array_equal(pasted[:8], 0.0)


@pytest.mark.parametrize(
    "box",
    [
        [5.3, 7.1, 20.8, 27.5],  # fractional corners
        [-4.0, 20.0, 12.0, 40.0],  # partly outside the image
        [0.0, 0.0, 32.0, 24.0],  # the whole height, not square
        [10.0, 12.0, 13.0, 14.5],  # smaller than the mask: downsampled by ~10
    ],
)
def test_paste_matches_numpy_reference(box):
    rng = np.random.default_rng(0)
    mask = rng.uniform(size=(M, M)).astype(np.float32)
    pasted = _paste(mask[None, None], [[box]], 32, 32)[0, 0]
    np.testing.assert_allclose(pasted, _np_paste(mask, box, 32, 32), atol=1e-5)


def test_paste_batch_and_detections_are_independent():
    rng = np.random.default_rng(1)
    masks = rng.uniform(size=(2, 3, M, M)).astype(np.float32)
    boxes = np.asarray(
        [[[2, 3, 20, 30], [10, 0, 30, 12], [0, 0, 0, 0]], [[16, 16, 32, 40], [4.5, 4.5, 9.5, 9.5], [1, 30, 25, 38]]],
        np.float32,
    )
    pasted = _paste(masks, boxes, 32, 40)
    assert pasted.shape == (2, 3, 32, 40)
    for b in range(2):
        for d in range(3):
            if boxes[b, d, 2] > boxes[b, d, 0]:
                np.testing.assert_allclose(pasted[b, d], _np_paste(masks[b, d], boxes[b, d], 32, 40), atol=1e-5)
    assert np.all(np.isfinite(pasted))
    np.testing.assert_array_equal(pasted[0, 2], 0.0)  # an empty (padding) box pastes nothing
