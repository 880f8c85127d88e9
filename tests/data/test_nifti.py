"""mrcnn_tf/data/nifti.py: both layouts read from volumes stacked from the bundled sample's TIFF slices give the
TIFF folder's own examples; cases are patients; slice choice, label map and modalities; every bad input is a
DataError naming its file."""
import dataclasses
import inspect
import json
import os

import nibabel as nib
import numpy as np
import pytest
from volume_data import (CROP, LGG_CHANNELS, SAMPLE, SAMPLE_PATIENT, canonical_affine, sample_items, sample_stack,
                         save_nifti, write_brats_case, write_nnunet_case)

from mrcnn_tf.config import DataConfig
from mrcnn_tf.data import lgg, nifti, readers, splits, volumes
from mrcnn_tf.errors import DataError

TIFF_ORDER = DataConfig(modalities=LGG_CHANNELS)  # the TIFFs' channel order: pre-contrast, FLAIR, post-contrast


def examples(reader, items, size=64):
    return [readers.load_example(reader, item, size, 4) for item in items]


def assert_same_examples(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def tiff_examples():
    """The sample patient's slices as the lgg reader gives them (the reference)."""
    reader = lgg.LGGReader(SAMPLE)
    return examples(reader, sample_items())


@pytest.fixture(scope="module")
def stack():
    return sample_stack()


def test_a_brats_case_gives_the_tiff_folders_examples(tmp_path, stack, tiff_examples):
    write_brats_case(str(tmp_path), SAMPLE_PATIENT, *stack)
    reader = readers.open_dataset(str(tmp_path), "auto", TIFF_ORDER)
    assert reader.format == "nifti" and reader.modalities == LGG_CHANNELS and reader.class_names == ("tumour",)
    assert [reader.slice_of(item) for item in reader.items] == [(SAMPLE_PATIENT, z) for z in range(len(stack[0]))]
    assert {item.patient for item in reader.items} == {SAMPLE_PATIENT}
    assert_same_examples(examples(reader, reader.items), tiff_examples)


@pytest.mark.parametrize("four_d", [False, True], ids=["nnunet", "decathlon_4d"])
def test_an_nnunet_or_decathlon_case_gives_the_same_examples(tmp_path, stack, tiff_examples, four_d):
    write_nnunet_case(str(tmp_path), SAMPLE_PATIENT, *stack, four_d=four_d)
    assert readers.detect_format(str(tmp_path)) == "nifti"
    reader = readers.open_dataset(str(tmp_path))  # channel order by default
    assert reader.modalities == ("0", "1", "2")
    assert_same_examples(examples(reader, reader.items), tiff_examples)


def test_a_volume_stored_in_another_orientation_gives_the_same_slices(tmp_path, stack, tiff_examples):
    images, labels = stack
    affine = canonical_affine()
    for case_id, flip in (("canonical", False), ("lps", True)):
        grid, label_grid, grid_affine = volumes.from_axial_slices(images), volumes.from_axial_slices(labels), affine
        if flip:  # the same voxels stored with x and y reversed (DICOM's LPS order): the affine says so
            grid, label_grid = grid[::-1, ::-1], label_grid[::-1, ::-1]
            grid_affine = affine @ np.array([[-1, 0, 0, grid.shape[0] - 1], [0, -1, 0, grid.shape[1] - 1],
                                             [0, 0, 1, 0], [0, 0, 0, 1]])
        for c, name in enumerate(LGG_CHANNELS):
            save_nifti(str(tmp_path / case_id / f"{case_id}_{name}.nii.gz"), grid[..., c], grid_affine)
        save_nifti(str(tmp_path / case_id / f"{case_id}_seg.nii.gz"), label_grid, grid_affine)
    reader = readers.open_dataset(str(tmp_path), "nifti", TIFF_ORDER)
    by_case = {case_id: [item for item in reader.items if item.patient == case_id] for case_id in ("canonical", "lps")}
    assert nib.aff2axcodes(nib.load(str(tmp_path / "lps" / "lps_t1.nii.gz")).affine) == ("L", "P", "S")
    assert_same_examples(examples(reader, by_case["lps"]), tiff_examples)
    assert_same_examples(examples(reader, by_case["canonical"]), tiff_examples)


def test_cases_are_patients_so_splits_stay_patient_level(tmp_path):
    images, labels = sample_stack(crop=CROP)
    for number in range(5):
        write_brats_case(str(tmp_path), f"CASE_{number}", images, labels, channels=("flair",))
    reader = readers.open_dataset(str(tmp_path))
    assert reader.modalities == ("flair",) and len(reader.items) == 5 * len(images)
    has_tumour = [bool(reader.read(item)[1].shape[0]) for item in reader.items]
    split = splits.make_splits(reader.items, has_tumour, (0.6, 0.2, 0.2))
    assert split["by"] == "patient"
    assert sorted(split["train"] + split["val"] + split["test"]) == [f"CASE_{n}" for n in range(5)]


def test_slice_choice_and_label_map(tmp_path):
    images, labels = sample_stack(crop=CROP)
    labels = labels.astype(np.int16)
    labels[2][labels[2] > 0] = 4  # slice 2's tumour is another label value
    write_brats_case(str(tmp_path), "C1", images, labels, channels=("flair",))
    tumour = readers.open_dataset(str(tmp_path), "nifti", DataConfig(slices="tumour"))
    assert [tumour.slice_of(item)[1] for item in tumour.items] == [1, 2, 3]
    every = readers.open_dataset(str(tmp_path), "nifti", DataConfig(slices="every:3"))
    assert [every.slice_of(item)[1] for item in every.items] == [0, 3, 6]
    mapped = readers.open_dataset(str(tmp_path), "nifti", DataConfig(label_map=((1, "core"), (4, "enhancing"))))
    assert mapped.class_names == ("core", "enhancing")
    assert mapped.read(mapped.items[1])[2].tolist() == [1] and mapped.read(mapped.items[2])[2].tolist() == [2]
    only_4 = readers.open_dataset(str(tmp_path), "nifti", DataConfig(label_map=((4, "enhancing"),)))
    assert len(only_4.read(only_4.items[1])[1]) == 0  # label 1 is not listed: background


def test_modalities_by_name_index_alias_and_repeat(tmp_path, stack):
    images, labels = sample_stack(crop=CROP)
    write_nnunet_case(str(tmp_path), "C1", images, labels)
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1", "1": "FLAIR", "2": "T1ce"}}))
    reader = readers.open_dataset(str(tmp_path), "nifti", DataConfig(modalities=("flair",)))
    assert reader.modalities == ("1",)
    image = reader.read(reader.items[0])[0]
    np.testing.assert_array_equal(image, np.repeat(images[0][..., 1:2], 3, axis=2))
    assert readers.resolve_modalities(str(tmp_path), "auto", DataConfig(modalities=("2", "T1"))) == ("2", "0")
    assert readers.resolve_modalities(SAMPLE) is None  # a 2-D format


def test_more_than_three_modalities_need_a_choice_and_a_missing_one_is_named(tmp_path):
    images, labels = sample_stack(crop=CROP)
    four = np.concatenate([images, images[..., :1]], axis=-1)
    folder = write_brats_case(str(tmp_path), "C1", four, labels, channels=("flair", "t1", "t1ce", "t2"))
    with pytest.raises(DataError, match=r"C1 has 4 modalities \(flair, t1, t1ce, t2\); choose up to three with "
                                        r"--modalities") as error:
        readers.open_dataset(str(tmp_path))
    assert folder in str(error.value)
    with pytest.raises(DataError, match="case C1 has no modality 'adc'"):
        readers.open_dataset(str(tmp_path), "nifti", DataConfig(modalities=("flair", "adc")))
    write_brats_case(str(tmp_path), "C2", images, labels, channels=("flair", "t1", "t2"))
    with pytest.raises(DataError, match="C2.*has no modality 't1ce'"):  # C1 had it; C2 does not
        readers.open_dataset(str(tmp_path), "nifti", DataConfig(modalities=("flair", "t1ce")))


def test_the_reader_defaults_are_the_configurations():
    defaults = {name: parameter.default for name, parameter in inspect.signature(nifti.NiftiReader).parameters.items()
                if name != "root"}
    assert defaults == {field.name: getattr(DataConfig(), field.name) for field in dataclasses.fields(DataConfig)}
    assert set(defaults) == set(readers.VOLUME_OPTIONS)


# --- bad input: a DataError naming the file ---------------------------------------------------------------------


@pytest.fixture
def case_folder(tmp_path):
    images, labels = sample_stack(crop=CROP)
    return write_brats_case(str(tmp_path), "C1", images, labels, channels=("flair",)), images, labels


def _open(root):
    reader = readers.open_dataset(str(root), "nifti")
    return [reader.read(item) for item in reader.items]


def test_a_volume_of_the_wrong_dimensions_is_named(case_folder, tmp_path):
    folder, images, _ = case_folder
    flair = os.path.join(folder, "C1_flair.nii.gz")
    save_nifti(flair, np.zeros((4, 4), np.uint8), np.eye(4))
    with pytest.raises(DataError, match=r"C1_flair.nii.gz: a volume of shape \(4, 4\); expected 3-D"):
        _open(tmp_path)
    save_nifti(flair, np.zeros((4, 4, 4, 2), np.uint8), np.eye(4))  # 4-D in a layout of one file per modality
    with pytest.raises(DataError, match=r"C1_flair.nii.gz: a volume of shape \(4, 4, 4, 2\); expected 3-D"):
        _open(tmp_path)


def test_a_label_volume_of_another_shape_or_affine_is_named(case_folder, tmp_path):
    folder, _, labels = case_folder
    seg = os.path.join(folder, "C1_seg.nii.gz")
    grid = volumes.from_axial_slices(labels)
    save_nifti(seg, grid[:, :, :-1], canonical_affine())
    with pytest.raises(DataError, match=r"C1_seg.nii.gz: label volume of shape \(64, 64, 7\), but its image .*"
                                        r"C1_flair.nii.gz has shape \(64, 64, 8\)"):
        _open(tmp_path)
    save_nifti(seg, grid, canonical_affine(origin=(0, 0, 5)))
    with pytest.raises(DataError, match="C1_seg.nii.gz: the label volume's affine differs from its image's"):
        _open(tmp_path)


def test_modalities_on_different_grids_are_named(case_folder, tmp_path):
    folder, images, _ = case_folder
    save_nifti(os.path.join(folder, "C1_t2.nii.gz"), volumes.from_axial_slices(images[..., 0]),
               canonical_affine(spacing=(1, 1, 1)))
    with pytest.raises(DataError, match="C1_t2.nii.gz: its grid .* differs from .*C1_flair.nii.gz"):
        readers.open_dataset(str(tmp_path), "nifti", DataConfig(modalities=("flair", "t2")))


def test_non_finite_voxels_are_named(case_folder, tmp_path):
    folder, images, _ = case_folder
    flair = volumes.from_axial_slices(images[..., 1]).astype(np.float32)
    flair[3, 3, 3] = np.nan
    save_nifti(os.path.join(folder, "C1_flair.nii.gz"), flair, canonical_affine())
    with pytest.raises(DataError, match=r"C1_flair.nii.gz: 1 voxel\(s\) are NaN or infinite"):
        _open(tmp_path)


def test_a_case_without_labels_or_a_folder_without_cases_is_named(case_folder, tmp_path):
    folder, _, _ = case_folder
    os.remove(os.path.join(folder, "C1_seg.nii.gz"))
    with pytest.raises(DataError, match="case C1 has no label volume"):
        _open(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no NIfTI cases found"):
        nifti.find_cases(str(empty))


def test_a_corrupt_file_is_named(case_folder, tmp_path):
    folder, _, _ = case_folder
    path = os.path.join(folder, "C1_flair.nii.gz")
    with open(path, "wb") as f:
        f.write(b"not a volume")
    with pytest.raises(DataError, match="C1_flair.nii.gz: not a readable NIfTI file"):
        _open(tmp_path)
