"""Volume figures: each case's axial slices predicted one by one and stacked back into a volume, compared with its
label volume as a whole, in mm and mL.

Per case: Dice of the tumour voxels, the 95th-percentile Hausdorff distance (HD95) in mm, and the true and predicted
tumour volumes in mL with their absolute and relative error; over the cases: the means (:data:`DEFINITIONS`).
Tumour is every voxel of a class above 0 (all classes together). ``mrcnn_tf.volume_predict`` builds its label
volumes with :func:`predict_case` too, so evaluation scores exactly what predict writes.

Shape letters: ``Z``, ``H``, ``W`` an axial stack (``data.volumes``), ``n`` detections.
"""
import json

import numpy as np
from scipy import ndimage

from mrcnn_tf.staging import write_texts

JSON_FILE = "volume_report.json"
MARKDOWN_FILE = "volume_report.md"

DEFINITIONS = {
    "prediction": "Every axial slice of the case goes through the detector; the masks of the detections scoring at "
                  "least the score threshold are painted into the slice (where they overlap, the higher score "
                  "wins) and the slices are stacked back into the volume. Tumour = voxels of any class above 0.",
    "dice": "2|P & T| / (|P| + |T|) over all voxels of the case, P predicted and T true tumour voxels; 1 when both "
            "are empty.",
    "hd95": "The 95th percentile of the distances (mm, with the voxel spacing) from every surface voxel of P to the "
            "surface of T and from every surface voxel of T to the surface of P, pooled (MedPy's hd95; a surface "
            "voxel is a tumour voxel with a non-tumour face neighbour). 0 when both are empty; null when only one "
            "is, left out of the mean and counted.",
    "volume": "Voxels times the voxel volume |det(affine[:3, :3])| / 1000 (mL). abs_error_ml = |predicted - "
              "true|; rel_error = abs_error_ml / true (null when the case has no tumour: left out of its mean).",
    "means": "Plain means over the cases (each case counts once, whatever its size).",
}


# ---------------------------------------------------------------------------------------------------------------
# Slices back into a volume


def paint_detections(found, score_threshold, shape):
    """One slice's detections (a detector's dict: ``masks`` ``[n, H, W]``, ``scores`` ``[n]``, ``classes``
    ``[n]``) -> class ids ``[H, W]`` uint8 and the painting detection's score ``[H, W]`` float32, from the
    detections scoring at least ``score_threshold``; where masks overlap the higher score wins."""
    classes = np.zeros(shape, np.uint8)
    scores = np.zeros(shape, np.float32)
    kept = np.flatnonzero(np.asarray(found["scores"]) >= score_threshold)
    for index in kept[np.argsort(np.asarray(found["scores"])[kept], kind="stable")]:  # best painted last
        mask = np.asarray(found["masks"][index]) > 0
        classes[mask] = int(found["classes"][index])
        scores[mask] = float(found["scores"][index])
    return classes, scores


def predict_case(detect, image, score_threshold, known=None):
    """Predict every axial slice of a case: ``image`` ``[Z, H, W, 3]`` uint8 -> class ids ``[Z, H, W]`` uint8 and
    scores ``[Z, H, W]`` float32 (:func:`paint_detections`). ``known``: ``{slice index: class ids [H, W]}`` of
    slices painted already (the detector is not run on them again; their scores stay 0)."""
    known = known or {}
    classes = np.zeros(image.shape[:3], np.uint8)
    scores = np.zeros(image.shape[:3], np.float32)
    for z in range(len(image)):
        if z in known:
            classes[z] = known[z]
        else:
            classes[z], scores[z] = paint_detections(detect(image[z]), score_threshold, image.shape[1:3])
    return classes, scores


class RecordingDetector:
    """A detector that also keeps, for each call in order, the painted class ids (:func:`paint_detections` at
    ``score_threshold``) of its image, compactly (the tumour pixels only), so that a slice-level pass's detections
    serve the volume figures without a second pass."""

    def __init__(self, detect, score_threshold):
        self.detect, self.score_threshold = detect, score_threshold
        self._painted = []  # (shape, flat indices of class pixels, their classes)

    def __call__(self, image):
        found = self.detect(image)
        classes, _ = paint_detections(found, self.score_threshold, image.shape[:2])
        where = np.flatnonzero(classes)
        self._painted.append((classes.shape, where.astype(np.int64), classes.ravel()[where]))
        return found

    def painted(self, index):
        """The class ids ``[H, W]`` uint8 of the ``index``-th call's image."""
        shape, where, values = self._painted[index]
        classes = np.zeros(shape, np.uint8)
        classes.ravel()[where] = values
        return classes


# ---------------------------------------------------------------------------------------------------------------
# Figures


def dice(predicted, true):
    """Dice of two boolean volumes (1.0 when both are empty)."""
    total = int(predicted.sum()) + int(true.sum())
    return 1.0 if total == 0 else 2.0 * int((predicted & true).sum()) / total


def surface(mask):
    """The voxels of a boolean volume that have a face neighbour outside it (or lie on the array's border)."""
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def hausdorff_95(predicted, true, spacing):
    """HD95 in mm (:data:`DEFINITIONS`) of two boolean volumes with voxel ``spacing`` (mm per axis); 0.0 when both
    are empty, None when one is."""
    if not predicted.any() and not true.any():
        return 0.0
    if not predicted.any() or not true.any():
        return None
    # Distances between the two surfaces do not change when the volumes are cut to the box around both.
    rows = np.argwhere(predicted | true)
    box = tuple(slice(max(low - 1, 0), high + 2) for low, high in zip(rows.min(axis=0), rows.max(axis=0)))
    surface_p, surface_t = surface(predicted[box]), surface(true[box])
    to_t = ndimage.distance_transform_edt(~surface_t, sampling=spacing)[surface_p]
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing)[surface_t]
    return float(np.percentile(np.concatenate([to_t, to_p]), 95))


def case_figures(case_id, predicted_classes, true_classes, spacing, voxel_ml):
    """The figures of one case from its predicted and true class volumes (``[Z, H, W]``, 0 background), the voxel
    ``spacing`` in mm along those axes and the voxel volume in mL."""
    predicted, true = predicted_classes > 0, true_classes > 0
    true_ml, predicted_ml = int(true.sum()) * voxel_ml, int(predicted.sum()) * voxel_ml
    error = abs(predicted_ml - true_ml)
    return {
        "case": case_id,
        "dice": dice(predicted, true),
        "hd95_mm": hausdorff_95(predicted, true, spacing),
        "true_ml": true_ml,
        "predicted_ml": predicted_ml,
        "abs_error_ml": error,
        "rel_error": error / true_ml if true_ml > 0 else None,
    }


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarize(rows):
    """The means over cases (:data:`DEFINITIONS`) of :func:`case_figures` rows."""
    return {
        "cases": len(rows),
        "dice": _mean([row["dice"] for row in rows]),
        "hd95_mm": _mean([row["hd95_mm"] for row in rows]),
        "hd95_undefined_cases": sum(row["hd95_mm"] is None for row in rows),
        "true_ml": _mean([row["true_ml"] for row in rows]),
        "predicted_ml": _mean([row["predicted_ml"] for row in rows]),
        "abs_error_ml": _mean([row["abs_error_ml"] for row in rows]),
        "rel_error": _mean([row["rel_error"] for row in rows]),
        "rel_error_cases": sum(row["rel_error"] is not None for row in rows),
    }


def evaluate_cases(detect, reader, items, score_threshold, known=None, verbose=False):
    """The volume figures of the cases that ``items`` (a volume reader's items, ``data.nifti``) come from, each
    predicted over its whole volume. ``known``: ``{item: class ids [H, W]}`` of slices painted already
    (:class:`RecordingDetector`). Returns the ``volume_report.json`` dict."""
    case_ids = list(dict.fromkeys(reader.slice_of(item)[0] for item in items))
    done = {case_id: {} for case_id in case_ids}  # case -> {slice index: detections}
    for item, painted in (known or {}).items():
        case_id, z = reader.slice_of(item)
        done.setdefault(case_id, {})[z] = painted
    rows = []
    for number, case_id in enumerate(case_ids, start=1):
        case = reader.case_volume(case_id)
        predicted, _ = predict_case(detect, case.image, score_threshold, done[case_id])
        rows.append(case_figures(case_id, predicted, case.classes, case.spacing, case.voxel_ml))
        if verbose:
            print(f"volume figures: case {number}/{len(case_ids)} {case_id}: Dice {rows[-1]['dice']:.4f}", flush=True)
    return {"score_threshold": score_threshold, "mean": summarize(rows), "cases": rows, "definitions": DEFINITIONS}


# ---------------------------------------------------------------------------------------------------------------
# Report files


def _cell(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


def volume_markdown(figures):
    """``volume_report.md``: the per-case table, the means and the definitions."""
    mean = figures["mean"]
    lines = [
        "# Volume figures", "",
        f"{mean['cases']} case(s), score threshold {figures['score_threshold']}.", "",
        "| case | Dice | HD95 (mm) | true (mL) | predicted (mL) | abs error (mL) | rel error |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in figures["cases"] + [dict(mean, case="**mean**")]:
        lines.append(f"| {row['case']} | {_cell(row['dice'])} | {_cell(row['hd95_mm'], 2)} | "
                     f"{_cell(row['true_ml'], 3)} | {_cell(row['predicted_ml'], 3)} | {_cell(row['abs_error_ml'], 3)} "
                     f"| {_cell(row['rel_error'])} |")
    lines += ["", f"HD95 is undefined (one of the two volumes empty) for {mean['hd95_undefined_cases']} case(s); the "
              f"relative error is defined for {mean['rel_error_cases']}.", "", "## Definitions", ""]
    lines += [f"- **{name}**: {text}" for name, text in figures["definitions"].items()]
    return "\n".join(lines) + "\n"


def write_volume_report(figures, out_dir):
    """``volume_report.json`` and ``volume_report.md`` in ``out_dir``, both or neither (``staging``)."""
    return write_texts(out_dir, {JSON_FILE: json.dumps(figures, indent=1), MARKDOWN_FILE: volume_markdown(figures)})[0]
