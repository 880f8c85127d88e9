"""Predict on volumes: NIfTI or DICOM in, per case a label volume, an instance volume, a summary in mL, and for DICOM
a DICOM Segmentation out.

    from mrcnn_tf import volume_predict
    if volume_predict.is_volume_input(path):
        volume_predict.predict_volumes(model_dir, path, out_dir, score_threshold=0.5)

Inputs (``path``): a NIfTI file (3-D, or 4-D with the modalities last); a NIfTI case folder (BraTS:
``<CASE>_<modality>.nii.gz``); a folder of such cases or an nnU-Net folder (``imagesTs/<CASE>_0000.nii.gz``...);
a DICOM series folder (one file per slice, ordered by position along the slice normal, ``data.dicom``); or a DICOM
case folder whose sub-folders each hold one series, named by modality (``flair/``, ``t1ce/``...). Every axial slice
is predicted (the ``slices`` setting is for training), with the modalities and scaling the model's run recorded.

Outputs per case, in the output folder (each case's files appear together and whole, ``staging``)::

    <CASE>_labels.nii.gz     uint8 class ids (0 background, 1 tumour, or the label map's classes 1..K) on the
                             input's voxel grid: its shape and affine (for NIfTI input its header, retyped)
    <CASE>_instances.nii.gz  the 3-D connected components of the predicted tumour (26-connected), ids 1..n by size,
                             largest first; uint8, uint16 past 255 instances
    <CASE>_summary.json      per instance: voxels, volume in mL (from the voxel size), axial slice range, highest
                             detection score, voxels per class; and the totals
    <CASE>_seg.dcm           DICOM input only: a DICOM Segmentation (highdicom) referencing the source series, one
                             segment per class

Shape letters: ``Z``, ``H``, ``W`` the canonical axial stack (``data.volumes``).
"""
import dataclasses
import json
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

from mrcnn_tf import model_settings
from mrcnn_tf.config import DataConfig
from mrcnn_tf.data import dicom, nifti, volumes
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation.volumes import predict_case
from mrcnn_tf.staging import StagedFiles

LABELS_FILE = "{case}_labels.nii.gz"
INSTANCES_FILE = "{case}_instances.nii.gz"
SUMMARY_FILE = "{case}_summary.json"
SEG_FILE = "{case}_seg.dcm"


@dataclasses.dataclass(frozen=True)
class VolumeInput:
    """One case to predict: a NIfTI case (``data.nifti.Case``) or DICOM series folders (``{modality: folder}``,
    ``{"": folder}`` for one series)."""

    case_id: str
    nifti_case: nifti.Case | None = None
    series: dict | None = None


def is_volume_input(path):
    """Whether ``path`` is for volume prediction: a NIfTI file or a folder of NIfTI volumes (a case, cases, an
    nnU-Net folder), or a DICOM series folder or a folder of series folders."""
    if not os.path.exists(path):
        return False
    try:
        return nifti.is_nifti_dataset(path) or bool(dicom.series_folders(path))
    except DataError:  # a NIfTI folder with a mistake in it is still NIfTI input: predict names the mistake
        return True


def list_inputs(path):
    """The cases at ``path`` (module doc); DataError naming it when it holds none."""
    series = dicom.series_folders(path) if os.path.isdir(path) else {}
    if series:
        return [VolumeInput(os.path.basename(os.path.normpath(path)), series=series)]
    return [VolumeInput(case.case_id, nifti_case=case) for case in nifti.find_cases(path)]


# ---------------------------------------------------------------------------------------------------------------
# Reading a case as the model's run did


def _nifti_channels(source, data):
    return nifti.resolve_modalities(source.nifti_case, data.modalities, any_single=True)


def _dicom_folders(source, data):
    """The series folders of a DICOM input for the modalities of ``data``, in their order."""
    if "" in source.series:
        if len(set(data.modalities)) > 1:
            raise DataError(f"{source.series['']}: one series, but the model takes the modalities "
                            f"{list(data.modalities)}: give a folder with one series sub-folder per modality, named "
                            "so")
        return [source.series[""]] * max(len(data.modalities), 1)
    held = {name.lower(): folder for name, folder in source.series.items()}
    if not data.modalities:
        if len(held) > 3:
            raise DataError(f"{os.path.dirname(next(iter(held.values())))}: {len(held)} series ({sorted(held)}); "
                            "choose up to three modalities (--modalities, or the run's data.modalities)")
        return [held[name] for name in sorted(held)]
    missing = [name for name in data.modalities if name.lower() not in held]
    if missing:
        raise DataError(f"{os.path.dirname(next(iter(held.values())))}: no series sub-folder for the modalities "
                        f"{missing} (it has {sorted(held)})")
    return [held[name.lower()] for name in data.modalities]


def check_input(source, data):
    """Check a case from its headers before anything is predicted or written (DataError naming the file)."""
    if source.nifti_case is not None:
        nifti.check_case(source.nifti_case, _nifti_channels(source, data))
        return
    for folder in dict.fromkeys(_dicom_folders(source, data)):
        dicom.order_slices(dicom.read_headers(folder), folder)


def read_input(source, data):
    """``(CaseVolume, reference)``: the case scaled and sliced as ``data`` says, and what its outputs copy: the
    first NIfTI channel's header, or the first DICOM series (:class:`data.dicom.Series`)."""
    if source.nifti_case is not None:
        channels = _nifti_channels(source, data)
        case = nifti.read_case(source.nifti_case, channels, data.intensity_percentiles, with_labels=False)
        return case, nifti.load_image(channels[0].path).header
    folders = _dicom_folders(source, data)
    series = {folder: dicom.read_series(folder) for folder in dict.fromkeys(folders)}
    first = series[folders[0]]
    for folder, other in series.items():
        if other.voxels.shape != first.voxels.shape or not volumes.same_grid(other.affine, first.affine):
            raise DataError(f"{folder}: its grid (shape {other.voxels.shape}) differs from {first.folder}'s (shape "
                            f"{first.voxels.shape}) or its geometry does; the series of a case must share one grid")
    modalities = [(series[folder].voxels, folder) for folder in folders]
    case = volumes.make_case_volume(source.case_id, modalities, first.affine, data.intensity_percentiles,
                                    sources=tuple(series))
    return case, first


# ---------------------------------------------------------------------------------------------------------------
# Outputs


def summarize_case(case, classes, scores, instance_ids, count, class_names, score_threshold):
    """The ``<CASE>_summary.json`` dict of a predicted case: ``classes``, ``scores`` and ``instance_ids`` are its
    ``[Z, H, W]`` stacks (``instance_ids`` 1..``count``)."""
    voxel_ml = case.voxel_ml
    found = []
    for region, box in enumerate(instance_boxes(instance_ids, count), start=1):
        inside = instance_ids[box] == region
        by_class = np.bincount(classes[box][inside], minlength=len(class_names) + 1)
        voxels = int(inside.sum())
        found.append({
            "id": region, "voxels": voxels, "volume_ml": voxels * voxel_ml,
            "slices": [int(box[0].start), int(box[0].stop) - 1],
            "highest_score": float(scores[box][inside].max()),
            "voxels_by_class": {name: int(by_class[k]) for k, name in enumerate(class_names, start=1) if by_class[k]},
        })
    voxels = int(np.count_nonzero(classes))
    return {
        "case": case.case_id, "sources": list(case.sources), "shape": list(case.shape),
        "voxel_size_mm": [round(float(v), 6) for v in volumes.voxel_sizes(case.affine)],
        "voxel_volume_ml": voxel_ml, "score_threshold": score_threshold,
        "classes": {str(k): name for k, name in enumerate(class_names, start=1)},
        "slices": "axial slice indices of the canonical (RAS+) volume, 0 = the most inferior",
        "instances": found,
        "total": {"instances": count, "voxels": voxels, "volume_ml": voxels * voxel_ml},
    }


def instance_boxes(instance_ids, count):
    """The bounding box (a tuple of slices) of each instance id 1..``count`` of an id stack."""
    return ndimage.find_objects(instance_ids, max_label=count)


def _nifti_image(data, affine, header):
    """A NIfTI image of ``data`` on ``affine``; with the input's ``header`` (a NIfTI input), its fields kept (qform
    and sform codes, units), retyped to ``data``'s type without intensity scaling."""
    if not isinstance(header, nib.Nifti1Header):
        header = None
    image = nib.Nifti1Image(data, affine, header=header.copy() if header is not None else None)
    image.header.set_data_dtype(data.dtype)
    image.header.set_slope_inter(1.0, 0.0)
    image.header.set_intent("label")
    if header is None:
        image.set_qform(affine, code=1)  # scanner coordinates, as a DICOM series' are
        image.set_sform(affine, code=1)
    return image


def write_segmentation(path, series, labels, class_names):
    """A DICOM Segmentation of the series ``series`` (``data.dicom.Series``) from ``labels``, class ids on its grid
    ``[C, R, S]``: one segment per class, frames matching the source slices (highdicom)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="mrcnn_tf Mask R-CNN", version=_version(),
                                                   family=codes.cid7162.ArtificialIntelligence)
    segments = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=name,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm) for number, name in enumerate(class_names, start=1)]
    segmentation = hd.seg.Segmentation(
        source_images=list(series.datasets), pixel_array=np.ascontiguousarray(labels.transpose(2, 1, 0)),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=segments,
        series_instance_uid=hd.UID(), series_number=int(series.datasets[0].get("SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="mrcnn_tf",
        manufacturer_model_name="Mask R-CNN", software_versions=_version(), device_serial_number="none",
        series_description="Tumour segmentation (mrcnn_tf)", omit_empty_frames=False)
    segmentation.save_as(path)


def _version():
    from importlib import metadata

    try:
        return metadata.version("mrcnn_tf")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_case(out_dir, case, reference, classes, scores, class_names, score_threshold):
    """Write one case's outputs (module doc) into ``out_dir``, all of them or none; returns its summary."""
    instance_ids, count = volumes.connected_components_3d(classes)
    summary = summarize_case(case, classes, scores, instance_ids, count, class_names, score_threshold)
    labels = case.to_input_space(classes)  # the input's grid
    header = reference if isinstance(reference, nib.Nifti1Header) else None
    names = {key: pattern.format(case=case.case_id) for key, pattern in
             (("labels", LABELS_FILE), ("instances", INSTANCES_FILE), ("summary", SUMMARY_FILE))}
    if isinstance(reference, dicom.Series):
        names["seg"] = SEG_FILE.format(case=case.case_id)
    summary["outputs"] = names
    with StagedFiles(out_dir) as stage:
        nib.save(_nifti_image(labels, case.affine, header), stage.path(names["labels"]))
        nib.save(_nifti_image(case.to_input_space(instance_ids), case.affine, header), stage.path(names["instances"]))
        if "seg" in names:
            write_segmentation(stage.path(names["seg"]), reference, labels, class_names)
        with open(stage.path(names["summary"]), "w") as f:
            json.dump(summary, f, indent=1)
    return summary


# ---------------------------------------------------------------------------------------------------------------
# The whole job


def recorded_settings(model, data=None, class_names=None):
    """``(data section, class names)`` to predict with: those given, else those the model folder recorded
    (``model_settings``), else the defaults (with a warning for a folder that records no data section)."""
    recorded = None if callable(model) else model_settings.recorded_data(model)
    if data is None:
        if recorded is None and not callable(model):
            print(f"warning: {model} records no data section (modalities, scaling); using the defaults",
                  file=sys.stderr)
        data = recorded.data if recorded is not None else DataConfig()
    if class_names is None:
        class_names = recorded.class_names if recorded is not None else data.class_names
    return data, tuple(class_names)


def load_detector(model, weights="final", flip_tta=False):
    """The detector of ``model``: a run or export folder (``detectors.load_detector``, with the test-time flip
    when ``flip_tta``), or a detector function."""
    if callable(model):
        return model
    from mrcnn_tf import detectors

    return detectors.load_detector(model, weights, flip_tta)


def predict_volumes(model, path, out_dir, score_threshold=0.5, data=None, weights="final", class_names=None,
                    verbose=True, flip_tta=False):
    """Predict every case at ``path`` (module doc) and write its outputs into ``out_dir``.

    Args:
      model: a run or export folder, or a detector function (``mrcnn_tf.detectors``: image -> detections).
      score_threshold: detections scoring below it are left out of the volumes.
      data: the ``config.DataConfig`` to read volumes with; None: the model folder's recorded one.
      weights: a run folder's ``"final"`` or ``"best"`` weights. class_names: None for the model's.
      flip_tta: a run folder's model with the test-time flip.
    Returns:
      the cases' summaries (the ``<CASE>_summary.json`` dicts), in case order.
    Every case is checked (headers, series order) before the model loads and anything is written; DataError names
    the file at fault.
    """
    sources = list_inputs(path)
    data, class_names = recorded_settings(model, data, class_names)
    for source in sources:
        check_input(source, data)
    detect = load_detector(model, weights, flip_tta)
    summaries = []
    for number, source in enumerate(sources, start=1):
        case, reference = read_input(source, data)
        classes, scores = predict_case(detect, case.image, score_threshold)
        summaries.append(write_case(out_dir, case, reference, classes, scores, class_names, score_threshold))
        if verbose:
            total = summaries[-1]["total"]
            print(f"case {number}/{len(sources)} {case.case_id}: {total['instances']} tumour(s), "
                  f"{total['volume_ml']:.2f} mL", file=sys.stderr)
    return summaries
