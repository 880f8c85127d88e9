"""Tests for mrcnn_tf/ops/anchors.py: counts, centres, shapes and the ``((y * W) + x) * A + a`` order."""
import numpy as np
import pytest

from mrcnn_tf.ops import anchors as anchor_ops

IMAGE_SIZE = 256
STRIDES = (4, 8, 16, 32, 64)
SIZES = (32, 64, 128, 256, 512)
RATIOS = (0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def fpn_anchors():
    anchors, counts = anchor_ops.multilevel_anchors(IMAGE_SIZE, STRIDES, SIZES, RATIOS)
    return anchors.numpy(), counts


def _centre_size(anchors):
    y1, x1, y2, x2 = anchors.astype(np.float64).T
    return (y1 + y2) / 2, (x1 + x2) / 2, y2 - y1, x2 - x1


def _levels(anchors, counts):
    """Split ``[N, 4]`` into per-level arrays, zipped with stride and size."""
    starts = np.cumsum([0] + list(counts))
    return [
        (anchors[start:stop], stride, size)
        for start, stop, stride, size in zip(starts[:-1], starts[1:], STRIDES, SIZES)
    ]


def test_counts_per_level(fpn_anchors):
    anchors, counts = fpn_anchors
    # 256 / stride locations per side, 3 ratios each: 3*64*64, 3*32*32, 3*16*16, 3*8*8, 3*4*4.
    assert list(counts) == [12288, 3072, 768, 192, 48]
    assert anchors.shape == (12288 + 3072 + 768 + 192 + 48, 4)
    assert anchors.dtype == np.float32


def test_centres_on_stride_grid(fpn_anchors):
    anchors, counts = fpn_anchors
    for level, stride, _ in _levels(anchors, counts):
        side = IMAGE_SIZE // stride
        index = np.arange(len(level))
        y = index // (len(RATIOS) * side)
        x = (index // len(RATIOS)) % side
        yc, xc, _, _ = _centre_size(level)
        np.testing.assert_allclose(yc, (y + 0.5) * stride, atol=1e-3)
        np.testing.assert_allclose(xc, (x + 0.5) * stride, atol=1e-3)


def test_area_and_aspect_ratio(fpn_anchors):
    anchors, counts = fpn_anchors
    for level, _, size in _levels(anchors, counts):
        _, _, h, w = _centre_size(level)
        ratio = np.tile(RATIOS, len(level) // len(RATIOS))  # ratio index is innermost
        np.testing.assert_allclose(h * w, size**2, rtol=1e-5)
        np.testing.assert_allclose(h / w, ratio, rtol=1e-5)


def test_ordering_known_anchors(fpn_anchors):
    anchors, counts = fpn_anchors
    # Level P2 (stride 4, size 32, W = 64): index ((2 * 64) + 5) * 3 + 1 is y = 2, x = 5, ratio 1.
    # Centre ((2 + 0.5) * 4, (5 + 0.5) * 4) = (10, 22); a 32 x 32 square -> [10-16, 22-16, 10+16, 22+16].
    np.testing.assert_allclose(anchors[(2 * 64 + 5) * 3 + 1], [-6, 6, 26, 38], atol=1e-4)
    # Same location, ratio 0.5: h = 32 * sqrt(0.5) = 22.627, w = 32 / sqrt(0.5) = 45.255.
    h, w = 32 * np.sqrt(0.5), 32 / np.sqrt(0.5)
    np.testing.assert_allclose(anchors[(2 * 64 + 5) * 3 + 0], [10 - h / 2, 22 - w / 2, 10 + h / 2, 22 + w / 2],
                               atol=1e-4)
    # Level P3 starts after the 12288 anchors of P2. Its index ((3 * 32) + 1) * 3 + 2 is y = 3, x = 1, ratio 2:
    # centre (3.5 * 8, 1.5 * 8) = (28, 12); h = 64 * sqrt 2 = 90.51, w = 64 / sqrt 2 = 45.25.
    h, w = 64 * np.sqrt(2.0), 64 / np.sqrt(2.0)
    np.testing.assert_allclose(
        anchors[counts[0] + (3 * 32 + 1) * 3 + 2], [28 - h / 2, 12 - w / 2, 28 + h / 2, 12 + w / 2], atol=1e-4
    )
    # The last anchor: P6 (stride 64, size 512), y = x = 3, ratio 2 -> centre (224, 224).
    h, w = 512 * np.sqrt(2.0), 512 / np.sqrt(2.0)
    np.testing.assert_allclose(anchors[-1], [224 - h / 2, 224 - w / 2, 224 + h / 2, 224 + w / 2], rtol=1e-5)


def test_cell_anchors_known_case():
    # size 16: ratio 1/4 -> h = 16 * 1/2 = 8, w = 16 * 2 = 32; ratio 1 -> 16 x 16; ratio 4 -> h = 32, w = 8.
    cells = anchor_ops.cell_anchors(16, (0.25, 1.0, 4.0))
    assert cells.shape == (3, 4)
    assert cells.dtype == np.float32
    np.testing.assert_allclose(cells, [[-4, -16, 4, 16], [-8, -8, 8, 8], [-16, -4, 16, 4]], atol=1e-5)


def test_level_anchors_non_square_row_major():
    # A 2 x 3 map at stride 10 with one square ratio of side 4: rows first, x fastest.
    # Centres: y in (5, 15), x in (5, 15, 25).
    anchors = anchor_ops.level_anchors(2, 3, 10, 4, (1.0,))
    expected = [
        [3, 3, 7, 7],
        [3, 13, 7, 17],
        [3, 23, 7, 27],
        [13, 3, 17, 7],
        [13, 13, 17, 17],
        [13, 23, 17, 27],
    ]
    np.testing.assert_allclose(anchors, expected, atol=1e-5)


def test_level_anchors_ratio_innermost():
    # A 1 x 2 map at stride 8, ratios (1, 4) of size 8: location 0's two anchors come before location 1's.
    # Ratio 4 of size 8: h = 16, w = 4. Centres (4, 4) and (4, 12).
    anchors = anchor_ops.level_anchors(1, 2, 8, 8, (1.0, 4.0))
    expected = [[0, 0, 8, 8], [-4, 2, 12, 6], [0, 8, 8, 16], [-4, 10, 12, 14]]
    np.testing.assert_allclose(anchors, expected, atol=1e-5)
