"""Two models scored on the same images, compared: each figure's difference with a paired bootstrap interval.

Two reports of the same test patients each carry an interval, and those intervals overlap for all but large
differences, since ten patients make every figure noisy. Most of that noise is the patients themselves: a hard
patient is hard for both models. A paired bootstrap draws the patients once per resample and scores both models on
that draw, so the patients' difficulty cancels in the difference ``B - A`` and its interval is much narrower than
either figure's. An interval of ``B - A`` that excludes 0 is a difference these patients support; one that holds
0 is no evidence either way. It says whether model B beats model A on patients like these; whether B's recipe beats
A's is another question, since training again with another seed moves the figures too: replicate the runs.

The bootstrap's unit is the patient. Reports written before the ground-truth file carried patient ids get them
from the dataset (``patients``); without them each image is its own unit, which understates the uncertainty, and
the comparison says so.

The inputs are two report folders (``mrcnn-evaluate`` writes them): their ``report.json`` gives each model's score
and IoU thresholds, their ``coco_ground_truth.json`` and ``coco_detections.json`` its records. Nothing reruns a
model. Each model keeps its own score threshold (the one its report was scored at); AP and its interval do not
depend on one.

Shape letters as in :mod:`intervals`: ``R`` records, ``U`` units (patients), ``B`` resamples.
"""
import dataclasses
import json
import os

import numpy as np

from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation import ap, coco, confusion, intervals, overlap
from mrcnn_tf.staging import write_texts

REPORT_FILE = "report.json"
COMPARE_JSON = "compare.json"
COMPARE_MARKDOWN = "compare.md"
# The figures compared, in the order of the tables: (name, what it is).
FIGURES = (
    ("precision", "image-level precision, the paper's count"),
    ("recall", "image-level recall, the paper's count"),
    ("f1", "image-level F1, the paper's count"),
    ("f1_localised", "image-level F1, a tumour slice found only where a detection matches a true region"),
    ("box_ap50", "box AP50, equation (3)"),
    ("mask_ap50", "mask AP50, equation (3)"),
    ("dice_per_patient", "Dice per patient (mean over patients)"),
)


@dataclasses.dataclass
class ScoredReport:
    """One side of a comparison: a report folder's records and the thresholds it was scored at."""

    folder: str
    records: list
    score_threshold: float
    iou_threshold: float


def load_report(folder):
    """The :class:`ScoredReport` of a report folder; DataError naming the folder and the missing file when it is not
    one (a report of an older version lacks the COCO files), or naming the file when it cannot be read."""
    paths = {name: os.path.join(folder, name) for name in (REPORT_FILE, coco.GROUND_TRUTH_FILE, coco.DETECTIONS_FILE)}
    missing = [name for name, path in paths.items() if not os.path.isfile(path)]
    if missing:
        raise DataError(f"{folder}: not a report folder of mrcnn-evaluate (no {', '.join(missing)})")
    try:
        with open(paths[REPORT_FILE]) as f:
            thresholds = json.load(f)["thresholds"]
        score_threshold, iou_threshold = float(thresholds["score"]), float(thresholds["iou"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{paths[REPORT_FILE]}: no score and IoU thresholds to read ({error})") from error
    records, _ = coco.load_coco_ground_truth(paths[coco.GROUND_TRUTH_FILE])
    records = coco.attach_coco_detections(records, paths[coco.DETECTIONS_FILE])
    return ScoredReport(folder, records, score_threshold, iou_threshold)


def image_key(file_name):
    """What matches an image across reports and datasets: its path, absolute and normalised (``data/x.tif``,
    ``./data/x.tif`` and ``/abs/data/x.tif`` run from ``/abs`` are one image)."""
    return os.path.realpath(file_name)


def _by_image(side):
    """``{image_key: record}`` of one report; DataError naming the folder and an image it holds twice."""
    out = {}
    for record in side.records:
        key = image_key(record.file_name)
        if key in out:
            raise DataError(f"{os.path.join(side.folder, coco.GROUND_TRUTH_FILE)}: the image {record.file_name} is "
                            "listed twice")
        out[key] = record
    return out


def paired_records(a, b, patients=None):
    """The two reports' records of the same images in the same order, each with the patient id either report knows,
    else the one ``patients`` (dict :func:`image_key` -> patient id, e.g. :func:`dataset_patients`) gives.

    Images are matched by :func:`image_key`. Returns ``(records_a, records_b)``. DataError naming both folders when
    they hold different images, different ground truth for an image, or different patients for one, or were scored
    at different IoU thresholds; naming a report's image listed twice, or an image ``patients`` does not hold.
    """
    where = f"{a.folder} and {b.folder}"
    if a.iou_threshold != b.iou_threshold:
        raise DataError(f"{where} were scored at different IoU thresholds ({a.iou_threshold}, {b.iou_threshold})")
    by_key_a, by_key_b = _by_image(a), _by_image(b)
    only_a, only_b = sorted(set(by_key_a) - set(by_key_b)), sorted(set(by_key_b) - set(by_key_a))
    if only_a or only_b:
        examples = "; ".join(f"{which}: {names[0]}" for which, names in (("only in the first", only_a),
                                                                           ("only in the second", only_b)) if names)
        raise DataError(f"{where} were not scored on the same images: {len(only_a)} only in the first, "
                        f"{len(only_b)} only in the second (e.g. {examples})")
    out_a, out_b = [], []
    for key, first in by_key_a.items():
        second = by_key_b[key]
        same_truth = (first.gt_boxes.shape == second.gt_boxes.shape
                      and np.allclose(first.gt_boxes, second.gt_boxes, atol=0.5)
                      and np.array_equal(first.gt_crowd, second.gt_crowd))
        if not same_truth:
            raise DataError(f"{where} hold different ground truth for {first.file_name}")
        if None not in (first.patient, second.patient) and first.patient != second.patient:
            raise DataError(f"{where} name different patients for {first.file_name}: {first.patient!r}, "
                            f"{second.patient!r}")
        patient = first.patient if first.patient is not None else second.patient
        if patient is None and patients is not None:
            if key not in patients:
                raise DataError(f"{first.file_name} of {where} is not an image of the dataset given for patient "
                                "ids: give the dataset the reports were scored on, at the same path")
            patient = patients[key]
        out_a.append(dataclasses.replace(first, patient=patient))
        out_b.append(dataclasses.replace(second, patient=patient))
    return out_a, out_b


def dataset_patients(reader):
    """dict :func:`image_key` -> patient id of a dataset reader's items (``data.readers.open_dataset``), for
    :func:`paired_records`."""
    return {image_key(item.image_path): item.patient for item in reader.items}


def figure_samples(records, units, n_units, weights, score_threshold, iou_threshold):
    """Each figure of :data:`FIGURES` for each row of ``weights`` ``[B, U]`` (how often each unit is drawn; a row of
    ones gives the figure of the data as it is). Returns dict name -> ``[B]`` float64, NaN where undefined; the
    mask figures are all NaN for records without masks."""
    cells = intervals.per_unit_sum(confusion.image_level_cells(records, score_threshold), units, n_units)
    has_masks = ap.has_masks(records)
    localised = confusion.localised_cells(records, score_threshold, iou_threshold, "mask" if has_masks else "box")
    undefined = np.full(len(weights), np.nan)
    out = {name: intervals.proportion_samples(cells, weights, name) for name in ("precision", "recall")}
    out["f1"] = intervals.f1_samples(cells, weights)
    out["f1_localised"] = intervals.f1_samples(intervals.per_unit_sum(localised, units, n_units), weights)
    for kind in ap.KINDS:
        usable = kind == "box" or has_masks
        out[f"{kind}_ap50"] = (intervals.ap_samples(intervals.rank_detections(
            records, units, n_units, kind, iou_threshold), weights) if usable else undefined)
    if has_masks:
        per_patient = overlap.dice_summary(records, score_threshold)["per_patient"]
        out["dice_per_patient"] = intervals.mean_samples(
            intervals.dice_per_unit(per_patient, records, units, n_units), weights)
    else:
        out["dice_per_patient"] = undefined
    return out


def _value(sample):
    value = float(sample)
    return None if not np.isfinite(value) else value


def compare_reports(a, b, patients=None, resamples=intervals.RESAMPLES, seed=intervals.SEED,
                    confidence=intervals.CONFIDENCE):
    """Compare the :class:`ScoredReport` ``a`` with ``b`` on their shared images (:func:`paired_records`, with
    ``patients``).

    Returns a JSON-ready dict: ``a`` and ``b`` (folder, score threshold, images), ``iou_threshold``,
    ``confidence``, ``bootstrap`` (unit, n_units, resamples, seed, paired: True) and ``figures``: name -> dict(a, b,
    difference = b - a, low, high: the percentile interval of the paired resamples' differences,
    b_higher_share and b_lower_share: the shares of the resamples where both are defined in which b's figure is
    higher and lower (the rest are ties), undefined_resamples). Without patient ids (``bootstrap.unit`` ``"image"``)
    ``dice_per_patient`` is the mean Dice per image.
    """
    records_a, records_b = paired_records(a, b, patients)
    units, n_units, unit_kind = intervals.patient_units(records_a)
    # [1 + B, U]: the data as it is (a row of ones), then the resamples, the same draws for both models; one pass
    # over each model's records gives its figures and their resamples.
    weights = np.vstack([np.ones((1, n_units), np.int64), intervals.unit_weights(n_units, resamples, seed)])
    figures = {}
    samples = [figure_samples(records, units, n_units, weights, side.score_threshold, a.iou_threshold)
               for records, side in ((records_a, a), (records_b, b))]
    for name, _ in FIGURES:
        value_a, value_b = _value(samples[0][name][0]), _value(samples[1][name][0])
        difference = samples[1][name][1:] - samples[0][name][1:]  # [B], NaN where either is undefined
        both = None if value_a is None or value_b is None else value_b - value_a
        entry = intervals.bootstrap_figure(both, difference, confidence)
        defined = difference[np.isfinite(difference)]
        figures[name] = {"a": value_a, "b": value_b, "difference": both, "low": entry["low"], "high": entry["high"],
                         "b_higher_share": float(np.mean(defined > 0)) if len(defined) else None,
                         "b_lower_share": float(np.mean(defined < 0)) if len(defined) else None,
                         "undefined_resamples": entry["undefined_resamples"]}
    return {
        "a": {"report": a.folder, "score_threshold": a.score_threshold, "n_images": len(records_a)},
        "b": {"report": b.folder, "score_threshold": b.score_threshold, "n_images": len(records_b)},
        "iou_threshold": a.iou_threshold, "confidence": confidence,
        "bootstrap": {"unit": unit_kind, "n_units": n_units, "resamples": resamples, "seed": seed, "paired": True},
        "figures": figures,
    }


def _fmt(value, signed=False):
    return "n/a" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"


def to_markdown(comparison):
    """``compare.md``: one row per figure, A, B and B - A with its paired interval."""
    a, b, boot = comparison["a"], comparison["b"], comparison["bootstrap"]
    level = round(100 * comparison["confidence"])
    lines = ["# Two models on the same images", "",
             f"- A: `{a['report']}`, score threshold {a['score_threshold']:.3f}",
             f"- B: `{b['report']}`, score threshold {b['score_threshold']:.3f}",
             f"- {a['n_images']} images, {boot['n_units']} units of the bootstrap ({boot['unit']}); "
             f"IoU threshold {comparison['iou_threshold']}", "",
             f"| figure | A | B | B - A ({level}% paired interval) | resamples with B higher / lower |",
             "|---|---|---|---|---|"]
    undefined = []
    for name, what in FIGURES:
        f = comparison["figures"][name]
        if name == "dice_per_patient" and boot["unit"] != "patient":
            what = "Dice per image (no patient ids)"
        interval = "" if f["low"] is None else f" ({_fmt(f['low'], True)} to {_fmt(f['high'], True)})"
        share = ("n/a" if f["b_higher_share"] is None else
                 f"{100 * f['b_higher_share']:.0f}% / {100 * f['b_lower_share']:.0f}%")
        lines.append(f"| {what} | {_fmt(f['a'])} | {_fmt(f['b'])} | {_fmt(f['difference'], True)}{interval} "
                     f"| {share} |")
        if f["undefined_resamples"] and f["difference"] is not None:
            undefined.append(f"{what}: {f['undefined_resamples']}")
    lines += ["", f"The interval is a percentile bootstrap over {boot['unit']}s ({boot['resamples']} resamples, "
              f"seed {boot['seed']}), paired: each resample draws the {boot['unit']}s once and scores both models "
              "on that draw, so a hard patient counts against both. An interval that excludes 0 is a difference "
              "these images support; one that holds 0 is no evidence either way. It compares these two models, "
              "not their recipes: a recipe trained again with another seed moves too. Each model keeps its own "
              "score threshold."]
    if undefined:
        lines += ["", "Resamples where a figure was undefined for A or B (no tumour drawn, say), left out of its "
                  "interval: " + "; ".join(undefined) + "."]
    if boot["unit"] != "patient":
        lines += ["", "**Each image is its own unit here** (the reports carry no patient ids: give the dataset, "
                  "`--data`): slices of one patient move together, so these intervals are too narrow."]
    return "\n".join(lines) + "\n"


def write_comparison(comparison, out_dir):
    """Write ``compare.json`` and ``compare.md`` into ``out_dir``, both or neither; returns their paths."""
    return write_texts(out_dir, {COMPARE_JSON: json.dumps(comparison, indent=1),
                                 COMPARE_MARKDOWN: to_markdown(comparison)})
