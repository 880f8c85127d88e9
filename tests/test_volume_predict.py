"""mrcnn_tf/volume_predict.py: NIfTI cases and DICOM series in; label volumes on the input's grid (affine, shape
and header round-tripped), instance volumes, summaries in mL that follow the voxel size, a DICOM Segmentation that
references its series; bad input named, nothing written half; a run folder's recorded modalities used.

Most tests use an oracle detector (it finds the sample slice it is given and returns its true tumour), so that the
outputs can be checked voxel by voxel; one runs a tiny real model from a run folder."""
import json
import os

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import tiny_config
from scipy import ndimage
from volume_data import (CROP, canonical_affine, sample_stack, save_nifti, write_brats_case, write_dicom_series,
                         write_nnunet_case)

from mrcnn_tf import model_settings, runs, volume_predict
from mrcnn_tf.config import DataConfig
from mrcnn_tf.data import dicom, volumes
from mrcnn_tf.errors import DataError

FLAIR = DataConfig(modalities=("flair",))
# Voxel axes stored as L, P, S (DICOM's order) with an origin: not the canonical grid the slices are cut from.
LPS_AFFINE = np.array([[-0.9, 0, 0, 40.0], [0, -0.8, 0, 60.0], [0, 0, 3.0, -20.0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def stack():
    return sample_stack(crop=CROP)  # 8 slices of 64 x 64, tumour in slices 1-3


def oracle_for(images, labels, channel=0, classes=None, score=0.9):
    """A detector that recognises each slice of ``images`` by its channel ``channel`` and returns its true tumour
    (one detection per class of ``classes`` ``[Z, H, W]``, else one of class 1), seen images kept in ``seen``."""
    lookup = {np.ascontiguousarray(images[z][..., channel]).tobytes(): z for z in range(len(images))}
    classes = labels if classes is None else classes

    def detect(image):
        detect.seen.append(image)
        z = lookup[np.ascontiguousarray(image[..., 0]).tobytes()]
        found = [(c, (classes[z] == c).astype(np.uint8)) for c in np.unique(classes[z]) if c > 0]
        return {"boxes": np.zeros((len(found), 4), np.float32), "scores": np.full(len(found), score, np.float32),
                "classes": np.array([c for c, _ in found], np.int32),
                "masks": np.array([m for _, m in found], np.uint8).reshape((-1,) + image.shape[:2])}

    detect.seen = []
    return detect


def lps_case(root, case_id, images, labels, affine=LPS_AFFINE):
    """A BraTS case whose volumes are stored L, P, S: the canonical grids flipped in x and y."""
    grid, label_grid = volumes.from_axial_slices(images)[::-1, ::-1], volumes.from_axial_slices(labels)[::-1, ::-1]
    folder = os.path.join(root, case_id)
    for c, name in enumerate(("flair", "t1", "t1ce")):
        save_nifti(os.path.join(folder, f"{case_id}_{name}.nii.gz"), grid[..., c], affine)
    save_nifti(os.path.join(folder, f"{case_id}_seg.nii.gz"), label_grid, affine)
    return folder, label_grid


def test_a_nifti_case_gives_volumes_on_the_inputs_grid_and_a_summary(tmp_path, stack):
    images, labels = stack
    folder, label_grid = lps_case(str(tmp_path / "in"), "C1", images, labels)
    out = tmp_path / "out"
    assert volume_predict.is_volume_input(folder)
    summaries = volume_predict.predict_volumes(oracle_for(images, labels), folder, str(out), 0.5, data=FLAIR)
    assert sorted(os.listdir(out)) == ["C1_instances.nii.gz", "C1_labels.nii.gz", "C1_summary.json"]
    source = nib.load(os.path.join(folder, "C1_flair.nii.gz"))
    written = nib.load(str(out / "C1_labels.nii.gz"))
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.header["sform_code"] == source.header["sform_code"]
    np.testing.assert_array_equal(np.asarray(written.dataobj), label_grid)  # voxel for voxel, in the input's order
    instances = np.asarray(nib.load(str(out / "C1_instances.nii.gz")).dataobj)
    expected, count = ndimage.label(label_grid, structure=np.ones((3, 3, 3)))
    assert instances.max() == count and ((instances > 0) == (label_grid > 0)).all()
    summary = json.loads((out / "C1_summary.json").read_text())
    assert summary == summaries[0]
    voxel_ml = 0.9 * 0.8 * 3.0 / 1000
    assert summary["voxel_volume_ml"] == pytest.approx(voxel_ml)
    assert summary["total"]["voxels"] == int(labels.sum()) and summary["total"]["instances"] == count
    assert summary["total"]["volume_ml"] == pytest.approx(labels.sum() * voxel_ml)
    largest = summary["instances"][0]
    assert largest["id"] == 1 and largest["voxels"] == max(np.bincount(expected.ravel())[1:])
    assert largest["volume_ml"] == pytest.approx(largest["voxels"] * voxel_ml)
    assert largest["highest_score"] == pytest.approx(0.9)
    assert largest["voxels_by_class"] == {"tumour": largest["voxels"]}
    assert largest["slices"][0] >= 1 and largest["slices"][1] <= 3


def test_millilitres_follow_the_voxel_spacing(tmp_path, stack):
    images, labels = stack
    totals = {}
    for case_id, z in (("thin", 1.5), ("thick", 3.0)):
        write_brats_case(str(tmp_path / "in"), case_id, images, labels, canonical_affine((1.0, 1.0, z)))
    summaries = volume_predict.predict_volumes(oracle_for(images, labels), str(tmp_path / "in"), str(tmp_path / "out"),
                                               data=DataConfig(modalities=("t1",)))
    totals = {s["case"]: s["total"]["volume_ml"] for s in summaries}
    assert totals["thin"] == pytest.approx(labels.sum() * 1.5 / 1000)
    assert totals["thick"] == pytest.approx(2 * totals["thin"])


def test_a_4d_file_and_an_nnunet_images_folder(tmp_path, stack):
    images, labels = stack
    write_nnunet_case(str(tmp_path / "decathlon"), "C4", images, labels, four_d=True)
    one_file = str(tmp_path / "decathlon" / "imagesTr" / "C4.nii.gz")
    assert volume_predict.is_volume_input(one_file)
    summary, = volume_predict.predict_volumes(oracle_for(images, labels), one_file, str(tmp_path / "out"),
                                              data=DataConfig(modalities=("0", "1", "2")))
    assert summary["case"] == "C4" and summary["total"]["voxels"] == int(labels.sum())
    written = nib.load(str(tmp_path / "out" / "C4_labels.nii.gz"))  # 3-D, though the input was 4-D
    assert written.shape == nib.load(one_file).shape[:3] == (64, 64, 8)
    np.testing.assert_array_equal(np.asarray(written.dataobj), volumes.from_axial_slices(labels))
    write_nnunet_case(str(tmp_path / "nnunet"), "C5", images, labels)
    summary, = volume_predict.predict_volumes(oracle_for(images, labels), str(tmp_path / "nnunet" / "imagesTr"),
                                              str(tmp_path / "out"), data=DataConfig())
    assert summary["case"] == "C5" and (tmp_path / "out" / "C5_labels.nii.gz").is_file()


def test_a_dicom_series_gives_a_segmentation_that_references_it(tmp_path, stack):
    images, labels = stack
    flair = images[..., 1].astype(np.uint16) * 16 + 100
    series_dir = str(tmp_path / "series")
    paths = write_dicom_series(series_dir, flair)
    assert volume_predict.is_volume_input(series_dir)
    scaled = volumes.scale_to_uint8(flair, DataConfig().intensity_percentiles, "")  # what the model sees
    detect = oracle_for(np.repeat(scaled[..., None], 3, axis=3), labels)
    out = tmp_path / "out"
    summary, = volume_predict.predict_volumes(detect, series_dir, str(out), data=FLAIR)
    assert summary["outputs"]["seg"] == "series_seg.dcm" and len(detect.seen) == 8
    series = dicom.read_series(series_dir)
    written = nib.load(str(out / "series_labels.nii.gz"))
    np.testing.assert_allclose(written.affine, series.affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels.transpose(2, 1, 0))  # [C, R, S]
    seg = pydicom.dcmread(str(out / "series_seg.dcm"))
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == series.datasets[0].StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert seg.SegmentSequence[0].SegmentLabel == "tumour"
    segmentation = hd.seg.Segmentation.from_dataset(seg)
    for path, z in zip(paths, range(len(paths))):
        uid = pydicom.dcmread(path).SOPInstanceUID
        frame = segmentation.get_pixels_by_source_instance(source_sop_instance_uids=[uid], segment_numbers=[1])
        np.testing.assert_array_equal(frame[0, ..., 0], labels[z])


def test_a_dicom_case_of_modality_series_and_two_classes(tmp_path, stack):
    images, labels = stack
    classes = labels.copy()
    classes[2][classes[2] > 0] = 2  # slice 2's tumour is the second class
    case = tmp_path / "CASE7"
    for c, name in ((1, "flair"), (2, "t1ce")):
        write_dicom_series(str(case / name), images[..., c], study_uid="1.2.3", description=name)
    summary, = volume_predict.predict_volumes(oracle_for(images[..., [1, 2, 1]], labels, classes=classes), str(case),
                                              str(tmp_path / "out"), data=DataConfig(modalities=("flair", "t1ce")),
                                              class_names=("core", "oedema"))
    assert summary["case"] == "CASE7" and summary["classes"] == {"1": "core", "2": "oedema"}
    seg = pydicom.dcmread(str(tmp_path / "out" / "CASE7_seg.dcm"))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["core", "oedema"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == dicom.read_series(str(case / "flair")).series_uid
    by_class = {}
    for instance in summary["instances"]:
        for name, count in instance["voxels_by_class"].items():
            by_class[name] = by_class.get(name, 0) + count
    assert by_class == {"core": int((classes == 1).sum()), "oedema": int((classes == 2).sum())}


# --- bad input: named, and nothing written half ---------------------------------------------------------------


def _never(image):
    raise AssertionError("the detector ran on bad input")


def test_mixed_dicom_series_are_named_before_anything_runs_or_is_written(tmp_path, stack):
    images, _ = stack
    write_dicom_series(str(tmp_path / "in"), images[:3, ..., 1], names=["a1", "a2", "a3"], series_uid="1.2.3.4")
    write_dicom_series(str(tmp_path / "in"), images[:3, ..., 1], names=["b1", "b2", "b3"], series_uid="1.2.3.5")
    with pytest.raises(DataError, match="files of 2 series"):
        volume_predict.predict_volumes(_never, str(tmp_path / "in"), str(tmp_path / "out"), data=FLAIR)
    assert not (tmp_path / "out").exists()


def test_a_missing_modality_or_a_one_series_input_for_three_modalities_is_named(tmp_path, stack):
    images, labels = stack
    write_brats_case(str(tmp_path / "in"), "C1", images, labels, channels=("flair", "t1"))
    with pytest.raises(DataError, match="case C1 has no modality 't2'"):
        volume_predict.predict_volumes(_never, str(tmp_path / "in"), str(tmp_path / "out"),
                                       data=DataConfig(modalities=("flair", "t2")))
    write_dicom_series(str(tmp_path / "series"), images[..., 1])
    with pytest.raises(DataError, match="one series, but the model takes the modalities"):
        volume_predict.predict_volumes(_never, str(tmp_path / "series"), str(tmp_path / "out"),
                                       data=DataConfig(modalities=("flair", "t1", "t1ce")))
    assert not (tmp_path / "out").exists()


def test_a_case_that_fails_part_way_leaves_no_file_of_its_own(tmp_path, stack):
    images, labels = stack
    write_brats_case(str(tmp_path / "in"), "A_good", images, labels, channels=("flair",))
    folder = write_brats_case(str(tmp_path / "in"), "B_bad", images, labels, channels=("flair",))
    bad = volumes.from_axial_slices(images[..., 0]).astype(np.float32)
    bad[5, 5, 5] = np.inf  # found only when the voxels are read, after case A is written
    save_nifti(os.path.join(folder, "B_bad_flair.nii.gz"), bad, canonical_affine())
    with pytest.raises(DataError, match=r"B_bad_flair.nii.gz: 1 voxel\(s\) are NaN or infinite"):
        volume_predict.predict_volumes(oracle_for(images, labels), str(tmp_path / "in"), str(tmp_path / "out"),
                                       data=FLAIR)
    assert sorted(os.listdir(tmp_path / "out")) == ["A_good_instances.nii.gz", "A_good_labels.nii.gz",
                                                    "A_good_summary.json"]


def test_a_failing_writer_leaves_nothing_of_the_case(tmp_path, stack, monkeypatch):
    images, labels = stack
    write_brats_case(str(tmp_path / "in"), "C1", images, labels, channels=("flair",))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(volume_predict.json, "dump", broken)  # the summary, written last
    with pytest.raises(OSError, match="disk full"):
        volume_predict.predict_volumes(oracle_for(images, labels), str(tmp_path / "in"), str(tmp_path / "out"),
                                       data=FLAIR)
    assert os.listdir(tmp_path / "out") == []


# --- the model's recorded settings ------------------------------------------------------------------------------


def test_recorded_settings_come_from_a_run_or_an_export(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    config = tiny_config().replace(data={"modalities": ("flair", "t2"), "slices": "tumour"})
    config.to_json(str(run / "config.json"))
    export = run / "export"
    export.mkdir()
    (export / "saved_model.pb").write_bytes(b"")
    (export / "export.json").write_text(json.dumps({"class_names": ["tumour"]}))  # no data entry: the run's
    for folder in (run, export):
        recorded = model_settings.recorded_data(str(folder))
        assert recorded.data == config.data and recorded.path == str(run / "config.json")
    alone = tmp_path / "alone" / "1"
    alone.mkdir(parents=True)
    (alone / "saved_model.pb").write_bytes(b"")
    (alone / "export.json").write_text(json.dumps({"class_names": ["core"], "data": {"modalities": ["0"]}}))
    recorded = model_settings.recorded_data(str(tmp_path / "alone"))  # a base folder: its highest version
    assert recorded.data == DataConfig(modalities=("0",)) and recorded.class_names == ("core",)
    assert model_settings.recorded_data(str(tmp_path)) is None
    assert (model_settings.CONFIG_FILE, model_settings.EXPORT_FILE) == (runs.CONFIG_FILE, "export.json")


def test_is_volume_input_tells_volumes_from_images(tmp_path, stack):
    images, labels = stack
    assert not volume_predict.is_volume_input(str(tmp_path / "nowhere"))
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"\x89PNG")
    assert not volume_predict.is_volume_input(str(tmp_path / "pngs"))
    write_brats_case(str(tmp_path / "cases"), "C1", images, labels)
    assert volume_predict.is_volume_input(str(tmp_path / "cases"))
    assert volume_predict.is_volume_input(str(tmp_path / "cases" / "C1"))
    write_dicom_series(str(tmp_path / "dicom_case" / "flair"), images[:2, ..., 1])
    assert volume_predict.is_volume_input(str(tmp_path / "dicom_case"))


def test_a_run_folder_predicts_with_the_modalities_it_recorded(tmp_path, stack, monkeypatch):
    from mrcnn_tf.model import build_model

    images, labels = stack
    run = tmp_path / "run"
    run.mkdir()
    config = tiny_config().replace(data={"modalities": ("t1ce",)})
    runs.write_config(str(run), config)
    build_model(config).save_weights(runs.path(str(run), runs.WEIGHTS_FILE))
    folder, label_grid = lps_case(str(tmp_path / "in"), "C1", images, labels)
    seen = []
    load = volume_predict.load_detector

    def spying(model, weights="final", flip_tta=False):
        detect = load(model, weights, flip_tta)
        return lambda image: seen.append(image) or detect(image)

    monkeypatch.setattr(volume_predict, "load_detector", spying)
    summary, = volume_predict.predict_volumes(str(run), folder, str(tmp_path / "out"), score_threshold=0.0)
    assert len(seen) == 8
    for z, image in enumerate(seen):  # the run's one modality, t1ce (channel 2 of the stack), three times
        np.testing.assert_array_equal(image, np.repeat(images[z][..., 2:3], 3, axis=2))
    written = nib.load(str(tmp_path / "out" / "C1_labels.nii.gz"))
    np.testing.assert_allclose(written.affine, LPS_AFFINE)
    assert written.shape == label_grid.shape
    assert summary["total"]["voxels"] == int((np.asarray(written.dataobj) > 0).sum())
