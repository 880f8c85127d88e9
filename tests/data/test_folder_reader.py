"""Tests for mrcnn_tf/data/folder.py on tiny ``images/`` + ``masks/`` folders written to ``tmp_path`` with OpenCV.

Images are 80 x 96 (H x W) unless a test says otherwise; rectangles ``[y1, x1, y2, x2]`` (exclusive end) fill
``mask[y1:y2, x1:x2]``.
"""
import os

import cv2
import numpy as np
import pytest

from mrcnn_tf.data import readers
from mrcnn_tf.data.folder import FolderReader
from mrcnn_tf.errors import DataError

HEIGHT, WIDTH = 80, 96


def _write(root, folder, name, array):
    """Write ``array`` to ``root/folder/name`` with OpenCV (colour arrays given as RGB); returns the path."""
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    path = os.path.join(root, folder, name)
    assert cv2.imwrite(path, array[..., ::-1] if array.ndim == 3 else array)
    return path


def _grey(size=(HEIGHT, WIDTH), seed=0):
    return np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)


def _mask(*boxes, values=None, size=(HEIGHT, WIDTH)):
    """A ``[H, W]`` uint8 mask with ``boxes`` filled with ``values`` (default 255 each)."""
    mask = np.zeros(size, np.uint8)
    for (y1, x1, y2, x2), value in zip(boxes, values or [255] * len(boxes)):
        mask[y1:y2, x1:x2] = value
    return mask


def _pair(root, stem, image=None, mask=None, image_ext=".png", mask_ext=".png"):
    image_path = _write(root, "images", stem + image_ext, _grey() if image is None else image)
    _write(root, "masks", stem + mask_ext, _mask() if mask is None else mask)
    return image_path


# --- listing ---------------------------------------------------------------------------------------------------


def test_items_pair_images_and_masks_by_stem_in_numeric_order(tmp_path):
    _pair(tmp_path, "slice_10", image_ext=".png", mask_ext=".png")
    _pair(tmp_path, "slice_2", image_ext=".jpg", mask_ext=".tif")
    _pair(tmp_path, "slice_1", image_ext=".tiff", mask_ext=".png")
    _write(tmp_path, "masks", "unused.png", _mask())  # a mask without an image is ignored
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    (tmp_path / "images" / "._slice_1.png").write_bytes(b"macOS metadata")
    reader = FolderReader(str(tmp_path))
    assert reader.format == "folder" and reader.class_names == ("tumour",)
    images, masks = tmp_path / "images", tmp_path / "masks"
    assert [(item.image_path, item.mask_path) for item in reader.items] == [
        (str(images / "slice_1.tiff"), str(masks / "slice_1.png")),
        (str(images / "slice_2.jpg"), str(masks / "slice_2.tif")),
        (str(images / "slice_10.png"), str(masks / "slice_10.png"))]
    assert all(item.patient is None and item.image_id is None for item in reader.items)


def test_image_without_mask_names_it_and_the_expected_mask(tmp_path):
    _pair(tmp_path, "a")
    orphan = _write(tmp_path, "images", "b.jpg", _grey())
    _write(tmp_path, "masks", "b.jpg", _mask())  # lossy: not a mask format
    with pytest.raises(DataError) as error:
        FolderReader(str(tmp_path))
    assert orphan in str(error.value) and os.path.join(str(tmp_path), "masks", "b") + ".png" in str(error.value)


def test_empty_images_folder_raises(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError) as error:
        FolderReader(str(tmp_path))
    assert str(tmp_path / "images") in str(error.value) and "no image" in str(error.value)


def test_two_images_of_one_stem_raise(tmp_path):
    _pair(tmp_path, "a", image_ext=".png")
    _write(tmp_path, "images", "a.jpg", _grey())
    with pytest.raises(DataError, match="one file per stem"):
        FolderReader(str(tmp_path))


# --- read ------------------------------------------------------------------------------------------------------


def _only_item(root):
    reader = FolderReader(str(root))
    assert len(reader.items) == 1
    return reader, reader.items[0]


def test_binary_mask_regions_are_instances(tmp_path):
    _pair(tmp_path, "scan", mask=_mask((5, 8, 15, 20), (30, 35, 50, 60)))  # 120 px and 500 px, 0/255
    reader, item = _only_item(tmp_path)
    image, masks, classes = reader.read(item)
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), [500, 120])
    np.testing.assert_array_equal(classes, [1, 1])
    assert classes.dtype == np.int32


def test_instance_labelled_mask_gives_one_instance_per_value(tmp_path):
    # 1 and 3 touch, so connected regions would merge them; 2 has two separate parts, which regions would split.
    mask = _mask((5, 5, 15, 15), (5, 40, 15, 50), (50, 40, 60, 50), (15, 5, 25, 15), values=[1, 2, 2, 3])
    _pair(tmp_path, "scan", mask=mask)
    reader, item = _only_item(tmp_path)
    _, masks, classes = reader.read(item)
    assert masks.shape == (3, HEIGHT, WIDTH)
    for instance, value in zip(masks, (1, 2, 3)):
        np.testing.assert_array_equal(instance, mask == value)
    np.testing.assert_array_equal(classes, [1, 1, 1])


def test_colour_masks_one_instance_per_colour(tmp_path):
    mask = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    mask[5:15, 5:15] = (255, 0, 0)
    mask[15:25, 5:15] = (0, 255, 0)  # touches the red one
    _pair(tmp_path, "scan", mask=mask)
    reader, item = _only_item(tmp_path)
    _, masks, _ = reader.read(item)
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.sum(axis=(1, 2)).tolist() == [100, 100]
    # A binary mask saved in colour stays binary: its two regions are two instances.
    _pair(tmp_path, "scan", mask=np.repeat(_mask((5, 5, 10, 10), (40, 40, 50, 50))[..., None], 3, axis=2))
    assert reader.read(item)[1].shape == (2, HEIGHT, WIDTH)


def test_empty_mask_gives_no_instances(tmp_path):
    _pair(tmp_path, "scan")
    reader, item = _only_item(tmp_path)
    _, masks, classes = reader.read(item)
    assert masks.shape == (0, HEIGHT, WIDTH) and classes.shape == (0,)


def test_images_come_out_rgb(tmp_path):
    # Decoding itself (grey, 16-bit, alpha): tests/data/test_images.py.
    colour = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 200, 100, 30  # R, G, B
    _pair(tmp_path, "colour", image=colour)
    reader, item = _only_item(tmp_path)
    np.testing.assert_array_equal(reader.read(item)[0], colour)  # RGB, not OpenCV's BGR


def test_mask_of_another_size_is_named(tmp_path):
    _pair(tmp_path, "scan", mask=_mask((5, 5, 10, 10), size=(HEIGHT, WIDTH + 4)))
    reader, item = _only_item(tmp_path)
    with pytest.raises(DataError) as error:
        reader.read(item)
    assert item.mask_path in str(error.value) and "differs" in str(error.value)


# --- readers -----------------------------------------------------------------------------------------------------


def test_open_dataset_picks_folder_and_load_example_resizes(tmp_path):
    _pair(tmp_path, "scan", mask=_mask((40, 48, 80, 96)))  # the bottom-right quarter
    assert readers.detect_format(str(tmp_path)) == "folder"
    reader = readers.open_dataset(str(tmp_path))
    assert isinstance(reader, FolderReader)
    example = readers.load_example(reader, reader.items[0], 64, 4)
    assert example["image"].shape == (64, 64, 3) and example["gt_masks"].shape == (4, 64, 64)
    np.testing.assert_array_equal(example["gt_classes"], [1, -1, -1, -1])
    np.testing.assert_array_equal(example["gt_boxes"][0], [32, 32, 64, 64])
