"""Tests for mrcnn_tf/data/lgg.py on tiny LGG-layout folders written to ``tmp_path``, and once on the real data.

Layout: ``ROOT/TCGA_XX_NNNN_YYYYMMDD/<folder>_<slice>.tif`` (``[H, W, 3]`` uint8) beside ``..._<slice>_mask.tif``
(``[H, W]`` uint8, 0/255).
"""
import csv
import os

import numpy as np
import pytest
import tifffile

from conftest import ellipse_image, require_shared_lgg
from mrcnn_tf.data import lgg, readers
from mrcnn_tf.data.items import Item
from mrcnn_tf.errors import DataError

SIZE = 64


def _write_slice(root, folder, number, image=None, mask=None):
    """Write ``<folder>_<number>.tif`` and its mask (defaults: a tumour-free grey slice); returns the image path."""
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    stem = os.path.join(root, folder, f"{folder}_{number}")
    if image is None:
        image, _ = ellipse_image(SIZE, [], seed=number)
    if mask is None:
        mask = np.zeros(image.shape[:2], np.uint8)
    tifffile.imwrite(stem + ".tif", image, photometric="rgb" if image.ndim == 3 else "minisblack")
    if mask is not False:
        tifffile.imwrite(stem + "_mask.tif", mask)
    return stem + ".tif"


def _item(image_path):
    return Item(image_path, image_path[: -len(".tif")] + "_mask.tif", "TCGA_XX_0001")


# --- patient_id, list_slices -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder, expected",
    [
        ("TCGA_CS_4942_19970222", "TCGA_CS_4942"),
        ("TCGA_HT_A61A_20000127", "TCGA_HT_A61A"),
        ("TCGA_CS_4942", "TCGA_CS_4942"),  # no date suffix: the folder is its own id
    ],
)
def test_patient_id_strips_the_date(folder, expected):
    assert lgg.patient_id(folder) == expected


def test_list_slices_sorts_numerically_across_patient_folders(tmp_path):
    for folder in ("TCGA_BB_0002_20010101", "TCGA_AA_0001_20000101"):
        for number in (10, 2, 1):
            _write_slice(tmp_path, folder, number)
    (tmp_path / "data.csv").write_text("not a folder\n")  # the Kaggle download's table: ignored
    (tmp_path / "TCGA_ZZ_9999_20000101.tif").write_bytes(b"a stray file at the top level")
    slices = lgg.list_slices(str(tmp_path))
    names = [os.path.basename(s.image_path) for s in slices]
    assert names == [
        "TCGA_AA_0001_20000101_1.tif", "TCGA_AA_0001_20000101_2.tif", "TCGA_AA_0001_20000101_10.tif",
        "TCGA_BB_0002_20010101_1.tif", "TCGA_BB_0002_20010101_2.tif", "TCGA_BB_0002_20010101_10.tif",
    ]
    assert [s.patient for s in slices] == ["TCGA_AA_0001"] * 3 + ["TCGA_BB_0002"] * 3
    for s in slices:
        assert s.mask_path == s.image_path[: -len(".tif")] + "_mask.tif"
        assert os.path.isfile(s.image_path) and os.path.isfile(s.mask_path)


def test_list_slices_missing_mask_names_the_image(tmp_path):
    _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1)
    orphan = _write_slice(tmp_path, "TCGA_AA_0001_20000101", 2, mask=False)
    with pytest.raises(DataError) as error:
        lgg.list_slices(str(tmp_path))
    assert orphan in str(error.value)


def test_list_slices_of_an_empty_folder_raises(tmp_path):
    with pytest.raises(DataError, match="no '<name>.tif'"):
        lgg.list_slices(str(tmp_path))
    (tmp_path / "TCGA_AA_0001_20000101").mkdir()  # a patient folder with nothing in it is no better
    with pytest.raises(DataError, match="no '<name>.tif'"):
        lgg.list_slices(str(tmp_path))


def test_list_slices_of_a_missing_root_names_it(tmp_path):
    root = str(tmp_path / "nowhere")
    with pytest.raises(DataError) as error:
        lgg.list_slices(root)
    assert root in str(error.value)


# --- load_slice ------------------------------------------------------------------------------------------------


def test_tumour_free_slice_gives_only_padding(tmp_path):
    path = _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1)
    example = lgg.load_slice(_item(path), image_size=SIZE, max_instances=4)
    assert example["image"].shape == (SIZE, SIZE, 3) and example["image"].dtype == np.uint8
    np.testing.assert_array_equal(example["gt_classes"], [-1, -1, -1, -1])
    assert not example["gt_boxes"].any() and not example["gt_masks"].any()


def test_mask_with_two_regions_gives_two_tumours_with_their_boxes(tmp_path):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[5:15, 8:20] = 255  # 120 px: box [5, 8, 15, 20]
    mask[30:50, 35:60] = 255  # 500 px: box [30, 35, 50, 60], comes first (largest)
    path = _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1, mask=mask)
    example = lgg.load_slice(_item(path), image_size=SIZE, max_instances=3)
    np.testing.assert_array_equal(example["gt_classes"], [lgg.TUMOUR_CLASS, lgg.TUMOUR_CLASS, -1])
    assert lgg.TUMOUR_CLASS == 1
    np.testing.assert_array_equal(example["gt_boxes"], [[30, 35, 50, 60], [5, 8, 15, 20], [0, 0, 0, 0]])
    np.testing.assert_array_equal(example["gt_masks"][:2].sum(axis=(1, 2)), [500, 120])
    assert set(np.unique(example["gt_masks"])) == {0, 1}  # 0/255 on disk, 0/1 in the example


def test_load_slice_resizes_to_the_network_input(tmp_path):
    mask = np.zeros((96, 96), np.uint8)
    mask[24:72, 48:96] = 255  # scaled by 2/3: [16, 32, 48, 64]
    image, _ = ellipse_image(96, [])
    path = _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1, image=image, mask=mask)
    example = lgg.load_slice(_item(path), image_size=64, max_instances=2)
    assert example["image"].shape == (64, 64, 3) and example["gt_masks"].shape == (2, 64, 64)
    np.testing.assert_array_equal(example["gt_boxes"][0], [16, 32, 48, 64])


def test_mask_of_another_size_names_the_mask_file(tmp_path):
    path = _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1, mask=np.zeros((SIZE, SIZE + 8), np.uint8))
    item = _item(path)
    with pytest.raises(DataError) as error:
        lgg.load_slice(item, image_size=SIZE, max_instances=4)
    assert item.mask_path in str(error.value)


def test_corrupt_mask_names_the_file(tmp_path):
    item = _item(_write_slice(tmp_path, "TCGA_AA_0001_20000101", 1))
    with open(item.mask_path, "wb") as f:
        f.write(b"II*\x00" + bytes(range(256)) * 4)  # a TIFF header and garbage
    with pytest.raises(DataError) as error:
        lgg.load_slice(item, image_size=SIZE, max_instances=4)
    assert item.mask_path in str(error.value)


def test_channel_order_is_preserved(tmp_path):
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # pre-contrast, FLAIR, post-contrast
    path = _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1, image=image)
    loaded = lgg.load_slice(_item(path), image_size=SIZE, max_instances=2)["image"]
    assert (loaded[..., 0] == 10).all() and (loaded[..., 1] == 20).all() and (loaded[..., 2] == 30).all()


# --- LGGReader -------------------------------------------------------------------------------------------------


def test_reader_lists_the_slices_and_reads_tumours(tmp_path):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[5:15, 8:20] = 255
    mask[30:50, 35:60] = 255
    _write_slice(tmp_path, "TCGA_AA_0001_20000101", 2, mask=mask)
    _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1)
    reader = readers.open_dataset(str(tmp_path))
    assert isinstance(reader, lgg.LGGReader) and reader.format == "lgg" and reader.class_names == ("tumour",)
    assert reader.items == lgg.list_slices(str(tmp_path))
    assert all(isinstance(item, Item) for item in reader.items)
    image, masks, classes = reader.read(reader.items[1])
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert masks.shape == (2, SIZE, SIZE) and masks.sum(axis=(1, 2)).tolist() == [500, 120]  # largest first
    assert classes.tolist() == [lgg.TUMOUR_CLASS] * 2 and classes.dtype == np.int32
    _, masks, classes = reader.read(reader.items[0])  # tumour-free
    assert masks.shape == (0, SIZE, SIZE) and classes.shape == (0,) and classes.dtype == np.int32


# --- the real data ---------------------------------------------------------------------------------------------


def test_real_lgg_data():
    root = require_shared_lgg()
    slices = lgg.list_slices(root)
    assert len(slices) == 1906
    assert len({s.patient for s in slices}) == 100
    with open(os.path.join(root, "slices.csv")) as f:
        rows = list(csv.DictReader(f))
    # slices.csv lists patient folders in name order and slices by number, as list_slices should.
    assert [os.path.relpath(s.image_path, root) for s in slices] == [row["image"] for row in rows]
    assert [os.path.relpath(s.mask_path, root) for s in slices] == [row["mask"] for row in rows]
    tumour_row = next(row for row in rows if row["tumor"] == "1")
    example = lgg.load_slice(
        Item(os.path.join(root, tumour_row["image"]), os.path.join(root, tumour_row["mask"]), "x"),
        image_size=256, max_instances=8,
    )
    assert (example["gt_classes"] == lgg.TUMOUR_CLASS).sum() == int(tumour_row["instances"])
    assert example["image"].shape == (256, 256, 3)
    multi_row = next(row for row in rows if int(row["instances"]) >= 2)
    example = lgg.load_slice(
        Item(os.path.join(root, multi_row["image"]), os.path.join(root, multi_row["mask"]), "x"),
        image_size=256, max_instances=8,
    )
    assert (example["gt_classes"] == lgg.TUMOUR_CLASS).sum() == int(multi_row["instances"])


def test_slices_csv_gives_the_items_in_its_order(tmp_path):
    for number in (1, 2):
        _write_slice(tmp_path, "TCGA_AA_0001_20000101", number)
    rows = ["patient,image,mask,tumor,instances"] + [
        f"TCGA_AA_0001_20000101,TCGA_AA_0001_20000101/TCGA_AA_0001_20000101_{n}.tif,"
        f"TCGA_AA_0001_20000101/TCGA_AA_0001_20000101_{n}_mask.tif,0,0" for n in (2, 1)
    ]
    (tmp_path / "slices.csv").write_text("\n".join(rows) + "\n")
    slices = lgg.list_slices(str(tmp_path))
    assert [os.path.basename(s.image_path) for s in slices] == ["TCGA_AA_0001_20000101_2.tif",
                                                                "TCGA_AA_0001_20000101_1.tif"]
    assert {s.patient for s in slices} == {"TCGA_AA_0001"}


def test_malformed_slices_csv_is_named(tmp_path):
    _write_slice(tmp_path, "TCGA_AA_0001_20000101", 1)
    (tmp_path / "slices.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="slices.csv"):
        lgg.list_slices(str(tmp_path))
