"""mrcnn_tf/data/volumes.py: canonical orientation and its inverse, the axial layout, intensity scaling, modality
stacking, labels to classes and instances, slice choice, 3-D components and voxel volumes, on hand-made arrays."""
import nibabel as nib
import numpy as np
import pytest

from mrcnn_tf.data import volumes
from mrcnn_tf.errors import DataError

# Voxel axes: i runs to the patient's left (x falls), j to superior, k to posterior: an LSP-stored volume.
LSP_AFFINE = np.array([[-2.0, 0, 0, 50], [0, 0, -1.5, 30], [0, 3.0, 0, -10], [0, 0, 0, 1]])


def test_to_canonical_is_nibabels_closest_canonical_and_from_canonical_undoes_it():
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    canonical, affine = volumes.to_canonical(data, LSP_AFFINE)
    expected = nib.as_closest_canonical(nib.Nifti1Image(data, LSP_AFFINE))
    np.testing.assert_array_equal(canonical, np.asarray(expected.dataobj))
    np.testing.assert_allclose(affine, expected.affine)
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    np.testing.assert_array_equal(volumes.from_canonical(canonical, LSP_AFFINE), data)
    # A trailing channel axis comes along untouched.
    channels, _ = volumes.to_canonical(np.stack([data, -data], axis=-1), LSP_AFFINE)
    np.testing.assert_array_equal(channels[..., 1], -canonical)


def test_axial_slices_read_as_a_radiologist_reads_and_undo():
    grid = np.zeros((4, 5, 3), np.uint8)  # [X (to the right), Y (to anterior), Z (to superior)]
    grid[3, 4, 0] = 1  # the most right, most anterior voxel of the lowest slice
    grid[0, 0, 2] = 2  # the most left, most posterior voxel of the top slice
    slices = volumes.axial_slices(grid)
    assert slices.shape == (3, 5, 4)  # [Z, H = Y, W = X]
    assert slices[0, 0, 0] == 1  # top-left of slice 0: anterior, on the patient's right (the image's left)
    assert slices[2, 4, 3] == 2
    np.testing.assert_array_equal(volumes.from_axial_slices(slices), grid)


def test_voxel_sizes_and_millilitres_follow_the_affine():
    np.testing.assert_allclose(volumes.voxel_sizes(LSP_AFFINE), [2.0, 3.0, 1.5])
    assert volumes.voxel_volume_ml(LSP_AFFINE) == pytest.approx(2 * 3 * 1.5 / 1000)
    assert volumes.same_grid(LSP_AFFINE, LSP_AFFINE + 1e-5) and not volumes.same_grid(LSP_AFFINE, LSP_AFFINE * 1.01)


def test_uint8_volumes_are_kept_and_others_scaled_by_percentiles_of_their_non_zero_voxels():
    volume = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    assert volumes.scale_to_uint8(volume, (0.5, 99.5), "a.nii") is volume
    brain = np.zeros((10, 10, 10), np.int16)
    brain[2:8, 2:8, 2:8] = np.arange(216).reshape(6, 6, 6) + 1000  # 1000..1215, around lots of zero background
    scaled = volumes.scale_to_uint8(brain, (0, 100), "a.nii")
    assert scaled.dtype == np.uint8
    assert scaled[2, 2, 2] == 0 and scaled[7, 7, 7] == 255 and scaled[0, 0, 0] == 0
    assert scaled[2, 2, 3] == round(255 / 215)  # linear between the two
    clipped = volumes.scale_to_uint8(brain, (10, 90), "a.nii")
    assert clipped[2, 2, 2] == 0 and clipped[7, 7, 7] == 255  # beyond the percentiles: clipped
    np.testing.assert_array_equal(volumes.scale_to_uint8(np.full((3, 3), 7.0), (1, 99), "c"), 0)


def test_non_finite_voxels_are_an_error_naming_the_file():
    volume = np.ones((3, 3, 3), np.float32)
    volume[1, 1, 1] = np.nan
    volume[0, 0, 0] = np.inf
    with pytest.raises(DataError, match=r"case_flair.nii.gz: 2 voxel\(s\) are NaN or infinite"):
        volumes.scale_to_uint8(volume, (0.5, 99.5), "case_flair.nii.gz")


def test_one_two_or_three_modalities_fill_the_three_channels():
    a, b, c = (np.full((2, 2), v, np.uint8) for v in (1, 2, 3))
    assert volumes.stack_channels([a])[0, 0].tolist() == [1, 1, 1]
    assert volumes.stack_channels([a, b])[0, 0].tolist() == [1, 2, 1]
    assert volumes.stack_channels([a, b, c])[0, 0].tolist() == [1, 2, 3]


def test_labels_become_classes_through_the_label_map():
    labels = np.array([[0, 1, 2, 4]], np.int16)
    np.testing.assert_array_equal(volumes.label_classes(labels, (), "seg"), [[0, 1, 1, 1]])
    label_map = ((1, "core"), (4, "core"), (2, "oedema"))  # two values, one class; 3 not listed
    assert volumes.class_names_of(label_map) == ("core", "oedema")
    np.testing.assert_array_equal(volumes.label_classes(labels, label_map, "seg"), [[0, 1, 2, 1]])
    np.testing.assert_array_equal(volumes.label_classes(labels.astype(np.float32), (), "seg"), [[0, 1, 1, 1]])
    with pytest.raises(DataError, match="seg.nii.gz: a label volume holds whole numbers"):
        volumes.label_classes(np.array([0.0, 0.5]), (), "seg.nii.gz")


def test_each_8_connected_region_of_each_class_is_an_instance():
    classes = np.zeros((8, 8), np.uint8)
    classes[1:3, 1:3] = 1
    classes[3, 3] = 1  # touches the first region at a corner: the same instance
    classes[6:8, 6:8] = 1
    classes[1:3, 5:7] = 2  # a region of another class
    masks, labels = volumes.slice_instances(classes)
    assert labels.tolist() == [1, 1, 2]
    assert [int(m.sum()) for m in masks] == [5, 4, 4]
    empty_masks, empty_labels = volumes.slice_instances(np.zeros((4, 4), np.uint8))
    assert empty_masks.shape == (0, 4, 4) and empty_labels.shape == (0,)


def test_slice_choice():
    assert volumes.chosen_slices("all", 5) == [0, 1, 2, 3, 4]
    assert volumes.chosen_slices("every:2", 5) == [0, 2, 4]
    assert volumes.chosen_slices("tumour", 5, np.array([3, 1])) == [1, 3]
    for bad in ("some", "every:0", "every:", "all:2"):
        with pytest.raises(DataError, match="'all', 'tumour' or 'every:K'"):
            volumes.parse_slice_choice(bad)


def test_3d_components_are_26_connected_and_numbered_by_size():
    mask = np.zeros((4, 6, 6), np.uint8)
    mask[0, 0, 0] = mask[1, 1, 1] = 1  # touching at a corner only: one region in 3-D
    mask[2:4, 3:6, 3:6] = 1  # a larger region
    ids, count = volumes.connected_components_3d(mask)
    assert count == 2 and ids.dtype == np.uint8
    assert (ids == 1).sum() == 18 and ids[0, 0, 0] == ids[1, 1, 1] == 2
    assert volumes.connected_components_3d(np.zeros((2, 2, 2)))[1] == 0


def test_a_case_volume_maps_its_axial_stack_back_to_the_inputs_grid():
    rng = np.random.default_rng(0)
    flair = rng.integers(0, 255, (4, 5, 6)).astype(np.uint8)  # stored LSP
    labels = (flair > 200).astype(np.uint8)
    case = volumes.make_case_volume("c1", [(flair, "c1_flair")], LSP_AFFINE, (0.5, 99.5), labels,
                                    sources=("c1_flair", "c1_seg"))
    assert case.image.shape == (5, 6, 4, 3) and case.shape == (4, 5, 6)  # [Z (the j axis), H (k), W (i)]
    np.testing.assert_array_equal(case.image[..., 0], case.image[..., 2])  # one modality, repeated
    np.testing.assert_array_equal(case.to_input_space(case.image[..., 0]), flair)
    np.testing.assert_array_equal(case.to_input_space(case.classes), labels)
    np.testing.assert_allclose(case.spacing, [3.0, 1.5, 2.0])  # slice, row, column
    assert case.voxel_ml == pytest.approx(0.009)
