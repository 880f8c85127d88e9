"""mrcnn_tf/data/dicom.py: a series written with pydicom from the bundled sample's slices reads back in slice order
(by position along the normal, not file name) with its affine; missing or duplicated positions, mixed series and
files without geometry are DataErrors naming the files."""
import os

import numpy as np
import pydicom
import pytest
from volume_data import CROP, SPACING, sample_stack, write_dicom_series

from mrcnn_tf.data import dicom, volumes
from mrcnn_tf.errors import DataError


@pytest.fixture(scope="module")
def flair():
    images, _ = sample_stack(crop=CROP)
    return images[..., 1].astype(np.uint16) * 16 + 100  # [Z, H, W], MR-like 12-bit values


def test_a_series_reads_back_in_position_order_with_its_affine(tmp_path, flair):
    names = ["b", "h", "a", "g", "c", "f", "d", "e"]  # file names in no slice order
    paths = write_dicom_series(str(tmp_path), flair, names=names)
    series = dicom.read_series(str(tmp_path))
    assert series.files == tuple(paths)  # slice order, whatever the names
    assert series.voxels.shape == (64, 64, 8) and series.voxels.dtype == np.uint16  # [C, R, S]
    np.testing.assert_array_equal(series.voxels.transpose(2, 1, 0), flair)
    expected = np.array([[-SPACING[0], 0, 0, -10.0], [0, -SPACING[1], 0, 20.0], [0, 0, SPACING[2], 30.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(series.affine, expected)  # LPS positions as RAS
    # A standard axial series is already the canonical layout: its slices come back as they were written.
    canonical, _ = volumes.to_canonical(series.voxels, series.affine)
    np.testing.assert_array_equal(volumes.axial_slices(canonical), flair)
    assert series.series_uid == str(pydicom.dcmread(paths[0]).SeriesInstanceUID)


def test_slices_are_ordered_along_the_normal_even_against_instance_numbers(tmp_path, flair):
    paths = write_dicom_series(str(tmp_path), flair[:3])
    for path, number in zip(paths, (9, 1, 5)):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(path)
    np.testing.assert_array_equal(dicom.read_series(str(tmp_path)).voxels.transpose(2, 1, 0), flair[:3])


def test_rescale_slope_and_intercept_are_applied(tmp_path, flair):
    paths = write_dicom_series(str(tmp_path), flair[:2])
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -10
        ds.save_as(path)
    series = dicom.read_series(str(tmp_path))
    np.testing.assert_allclose(series.voxels.transpose(2, 1, 0), flair[:2] * 0.5 - 10)


def test_files_that_are_not_dicom_are_skipped(tmp_path, flair):
    write_dicom_series(str(tmp_path), flair[:2])
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 200)
    assert dicom.read_series(str(tmp_path)).voxels.shape[2] == 2
    assert dicom.series_folders(str(tmp_path)) == {"": str(tmp_path)}


def test_a_missing_slice_is_named_by_its_neighbours(tmp_path, flair):
    paths = write_dicom_series(str(tmp_path), flair)
    os.remove(paths[4])
    with pytest.raises(DataError, match=f"a gap of 6.000 mm between {paths[3]} and {paths[5]} where the series "
                                        "steps 3.000 mm: slice\\(s\\) missing"):
        dicom.read_series(str(tmp_path))


def test_a_duplicated_position_is_named(tmp_path, flair):
    paths = write_dicom_series(str(tmp_path), flair[:4])
    ds = pydicom.dcmread(paths[2])
    ds.ImagePositionPatient = pydicom.dcmread(paths[1]).ImagePositionPatient
    ds.save_as(paths[2])
    with pytest.raises(DataError, match="are at the same position") as error:
        dicom.read_series(str(tmp_path))
    assert paths[1] in str(error.value) and paths[2] in str(error.value)


def test_mixed_series_are_named(tmp_path, flair):
    write_dicom_series(str(tmp_path), flair[:3], names=["a1", "a2", "a3"], series_uid="1.2.3.4")
    write_dicom_series(str(tmp_path), flair[:3], names=["b1", "b2", "b3"], series_uid="1.2.3.5")
    with pytest.raises(DataError, match=r"files of 2 series \(SeriesInstanceUID 1.2.3.4: 3 file\(s\), e.g. .*a1; "
                                        r"1.2.3.5: 3 file\(s\)"):
        dicom.read_series(str(tmp_path))


def test_mixed_orientations_and_missing_geometry_are_named(tmp_path, flair):
    paths = write_dicom_series(str(tmp_path), flair[:3])
    ds = pydicom.dcmread(paths[1])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(paths[1])
    with pytest.raises(DataError, match=f"{paths[1]}: orientation .* differ"):
        dicom.read_series(str(tmp_path))
    del ds.ImagePositionPatient
    ds.save_as(paths[1])
    with pytest.raises(DataError, match=f"{paths[1]}: lacks \\['ImagePositionPatient'\\]"):
        dicom.read_series(str(tmp_path))


def test_a_folder_without_dicom_images_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no DICOM image files"):
        dicom.read_series(str(tmp_path))
    assert dicom.series_folders(str(tmp_path)) == {}


def test_a_case_folder_of_series_sub_folders(tmp_path, flair):
    for name in ("flair", "t1"):
        write_dicom_series(str(tmp_path / name), flair[:2])
    (tmp_path / "empty").mkdir()
    assert dicom.series_folders(str(tmp_path)) == {"flair": str(tmp_path / "flair"), "t1": str(tmp_path / "t1")}
