"""The evaluation report: every figure from its definition, as ``report.json``, ``report.md`` and plots."""
import json
import os

from mrcnn_tf.evaluation import ap, coco, confusion, intervals, overlap, plots

# The paper's Table 4 as printed (testing column); docs/evaluation.md says where it contradicts its Table 3.
PAPER_TABLE_4_TEST = {"precision": 0.937, "recall": 0.882, "f1": 0.803, "iou": 0.833, "map": 0.903}
# The score thresholds of the report's operating-point table (image-level figures at each).
OPERATING_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

DEFINITIONS = {
    "image_level": "The paper's count: an image is predicted positive when it has a detection scoring at least the "
                   "score threshold, wherever it lies, actually positive when it has a tumour instance (the paper's "
                   "Table 1 layout). Precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R), accuracy = "
                   "(TP+TN)/all, specificity = TN/(TN+FP); null when the denominator is 0.",
    "image_level_localised": "The localisation-aware count: a tumour slice is a TP only when a detection scoring at "
                             "least the score threshold overlaps a true region with IoU >= the IoU threshold (mask "
                             "IoU; box IoU when the detections carry no masks: matched_by). A tumour slice whose "
                             "detections at or above the threshold all miss (the paper's count calls it TP) is both "
                             "FN (the tumour was not found) and FP (a false alarm was raised); mislocated counts "
                             "those slices, so the cells sum to the images plus mislocated. TP+FP is still the "
                             "slices called positive and TP+FN the slices with tumour; tumour-free slices count as "
                             "in the paper's count, so specificity is the paper's count's.",
    "operating_points": "The image-level figures at other score thresholds, from the same detections. Choose an "
                        "operating point on a validation split: chosen on the split it is scored on, it is "
                        "optimistic.",
    "iou": "image_mean: mean over slices with tumour of the mask IoU of the union of predicted masks (score >= "
           "threshold) and the union of ground-truth masks, a missed slice counting 0: the figure comparable to "
           "the paper's IoU. matched_pair_mean: mean mask IoU of the (detection at or above the score threshold, "
           "ground-truth instance) pairs matched at IoU >= the IoU threshold, so never below it; unmatched "
           "instances are left out. instance_mean: the same as matched_pair_mean (its earlier name, kept for "
           "readers of older reports).",
    "ap": "Equation (3): detections of all images ranked by score (equal scores as one group), a true positive "
          "when its IoU with a not-yet-matched ground-truth instance is >= 0.5 (the best-IoU one), precision made "
          "monotone from the right, AP = sum of (r_{n+1} - r_n) p_interp(r_{n+1}) over the unique recall points. "
          "Every detection counts, whatever its score. Null, with the reason, when there is no ground truth.",
    "coco": "pycocotools COCOeval: AP averaged over IoU 0.50:0.95, AP50, AP75 (101-point interpolation, which "
            "differs slightly from equation (3)).",
    "dice": "2|P&G|/(|P|+|G|) of the union of predicted masks (score >= threshold) and the ground truth: per slice "
            "with tumour (mean), per patient (all its slices' pixels pooled, mean over patients), global (all "
            "pixels pooled); empty_slices_correct: share of tumour-free slices with nothing predicted.",
    "intervals": "95% intervals, each as {value, low, high}. Precision, recall and specificity: Wilson score "
                 "intervals of successes out of trials. F1, box and mask AP50 and per-patient Dice: a percentile "
                 "bootstrap over patients (bootstrap.unit): each of bootstrap.resamples resamples draws as many "
                 "patients as there are, with replacement and a fixed seed, and recomputes the figure from the "
                 "pooled records of the drawn patients (the detections are not rerun or rematched); low and high "
                 "are the 2.5th and 97.5th percentiles of the resamples where the figure is defined "
                 "(undefined_resamples counts the others). Without patient ids each image is its own unit, which "
                 "treats slices as independent: too narrow where slices share a patient.",
}


def build_report(records, score_threshold=0.5, iou_threshold=0.5, source=None, workdir=None,
                 resamples=intervals.RESAMPLES, seed=intervals.SEED):
    """Every figure of the report for ``records`` (a list of ImageRecord) as a JSON-ready dict.

    ``resamples`` and ``seed`` are those of the bootstrap of the ``intervals`` section.
    """
    counts = confusion.image_level_counts(records, score_threshold)
    box_ap = ap.dataset_ap(records, "box", iou_threshold)
    mask_ap = ap.dataset_ap(records, "mask", iou_threshold)
    has_masks = ap.has_masks(records)
    matched_by = "mask" if has_masks else "box"
    dice = overlap.dice_summary(records, score_threshold) if has_masks else None
    iou = overlap.iou_summary(records, score_threshold, iou_threshold) if has_masks else {}
    figures = {
        "source": source or {},
        "n_images": len(records),
        "n_images_with_tumour": sum(r.has_tumour for r in records),
        "thresholds": {"score": score_threshold, "iou": iou_threshold},
        "image_level": {**counts, **confusion.metrics_from_counts(**counts)},
        "image_level_localised": {**confusion.localised_counts(records, score_threshold, iou_threshold, matched_by),
                                  "matched_by": matched_by},
        "operating_points": confusion.operating_points(records, OPERATING_THRESHOLDS),
        "iou": {"image_mean": iou.get("image_mean"), "matched_pair_mean": iou.get("matched_pair_mean"),
                "instance_mean": iou.get("matched_pair_mean"), "n_matched_pairs": iou.get("n_matched_pairs")},
        "ap": {
            "box_ap50": box_ap["ap"], "mask_ap50": mask_ap["ap"],
            "box_reason": box_ap["reason"], "mask_reason": mask_ap["reason"],
        },
        "coco": coco.coco_ap(records, workdir),
        "dice": {key: dice[key] if dice else None
                 for key in ("per_slice_mean", "per_patient_mean", "global", "empty_slices_correct")},
    }
    figures["intervals"] = intervals.report_intervals(records, figures, dice["per_patient"] if dice else None,
                                                      resamples, seed)
    return {
        **figures,
        "curves": {name: {"precision": c["precision"], "recall": c["recall"], "ap": c["ap"]}
                   for name, c in (("box", box_ap), ("mask", mask_ap))},
        "per_slice_dice": dice["per_slice"] if dice else [],
        "definitions": DEFINITIONS,
    }


def _fmt(value):
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _interval(entry):
    """``"low-high"`` of an interval entry (``intervals``), ``"n/a"`` when it has none."""
    return "n/a" if entry["low"] is None else f"{entry['low']:.4f}-{entry['high']:.4f}"


def _header(report):
    """The report's opening lines: what was scored and how the intervals were made."""
    boot = report["intervals"]["bootstrap"]
    units = {"patient": f"{boot['n_units']} patients", "image": f"{boot['n_units']} images"}.get(
        boot["unit"], f"{boot['n_units']} units (a patient, or an image without a patient id)")
    lines = [
        "# Evaluation report", "",
        f"Source: `{json.dumps(report['source'])}`; {report['n_images']} images "
        f"({report['n_images_with_tumour']} with tumour); score threshold {report['thresholds']['score']}, "
        f"IoU threshold {report['thresholds']['iou']}.", "",
        f"95% intervals: Wilson score intervals for precision, recall and specificity; a percentile bootstrap over "
        f"{units} ({boot['resamples']} resamples, seed {boot['seed']}) for F1, AP50 and per-patient Dice.",
    ]
    if boot["unit"] != "patient":
        lines.append("Some or all images have no patient id, so each such image is its own unit of the bootstrap, as "
                     "if its slices were independent: where slices share a patient, these intervals are too narrow.")
    return lines + [""]


def _matrices(report):
    """The paper's image-level confusion matrix and the localisation-aware one, as markdown lines."""
    il, loc = report["image_level"], report["image_level_localised"]
    return [
        "## Image-level confusion matrix (paper's Table 1 layout)", "",
        "| | actual positive | actual negative |", "|---|---|---|",
        f"| predicted positive | TP {il['tp']} | FP {il['fp']} |",
        f"| predicted negative | FN {il['fn']} | TN {il['tn']} |", "",
        f"## Localisation-aware confusion matrix ({loc['matched_by']} IoU >= {report['thresholds']['iou']})", "",
        f"A tumour slice is a TP only when a detection at or above the score threshold overlaps a true region; the "
        f"{loc['mislocated']} tumour slices whose detections all miss are counted both FN and FP.", "",
        "| | actual positive | actual negative |", "|---|---|---|",
        f"| predicted positive | TP {loc['tp']} | FP {loc['fp']} ({loc['mislocated']} of them tumour slices, "
        f"also FN) |",
        f"| predicted negative | FN {loc['fn']} | TN {loc['tn']} |", "",
    ]


def _table_4(report):
    """Ours beside the paper's Table 4, with the intervals, as markdown lines."""
    il, ap50, ci, paper = report["image_level"], report["ap"], report["intervals"], PAPER_TABLE_4_TEST
    return [
        "## Ours beside the paper's Table 4 (testing column, as printed)", "",
        "| metric | ours | 95% interval | paper |", "|---|---|---|---|",
        f"| precision | {_fmt(il['precision'])} | {_interval(ci['image_level']['precision'])} | {paper['precision']} |",
        f"| recall | {_fmt(il['recall'])} | {_interval(ci['image_level']['recall'])} | {paper['recall']} |",
        f"| F1 | {_fmt(il['f1'])} | {_interval(ci['image_level']['f1'])} | {paper['f1']} (its own P and R give "
        f"0.909) |",
        f"| IoU, per-slice region (union masks; the one comparable to the paper's) | "
        f"{_fmt(report['iou']['image_mean'])} | | {paper['iou']} |",
        f"| mAP: box AP50, eq. (3) | {_fmt(ap50['box_ap50'])} | {_interval(ci['ap']['box_ap50'])} | {paper['map']} "
        f"(box or mask: not stated) |",
        f"| mAP: mask AP50, eq. (3) | {_fmt(ap50['mask_ap50'])} | {_interval(ci['ap']['mask_ap50'])} | |", "",
    ]


def _more_figures(report):
    """The localisation-aware figures and the rest, with intervals where there are, as markdown lines."""
    il, loc, cc, dice = report["image_level"], report["image_level_localised"], report["coco"], report["dice"]
    ci = report["intervals"]
    lines = [
        "## Stricter figures, beside the paper's lenient ones", "",
        "| figure | value | 95% interval |", "|---|---|---|",
    ]
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        lines.append(f"| {label}, localisation-aware | {_fmt(loc[key])} | "
                     f"{_interval(ci['image_level_localised'][key])} |")
    lines += [
        f"| IoU of matched pairs (pairs with IoU >= {report['thresholds']['iou']} only, so never below it) | "
        f"{_fmt(report['iou']['matched_pair_mean'])} | |", "",
        "## More figures", "", "| figure | value | 95% interval |", "|---|---|---|",
        f"| accuracy | {_fmt(il['accuracy'])} | |",
        f"| specificity | {_fmt(il['specificity'])} | {_interval(ci['image_level']['specificity'])} |",
    ]
    for kind in ("box", "mask"):
        figures = cc.get(kind) or {}
        for key in ("ap", "ap50", "ap75"):
            lines.append(f"| COCO {kind} {key.upper()} | {_fmt(figures.get(key))} | |")
    for key in ("per_slice_mean", "per_patient_mean", "global", "empty_slices_correct"):
        entry = ci["dice"].get(key)  # only the per-patient mean has one
        interval = f" {_interval(entry)} " if entry else " "
        lines.append(f"| Dice {key.replace('_', ' ')} | {_fmt(dice[key])} |{interval}|")
    return lines + [""]


def to_markdown(report):
    """``report.md``: the figures as tables, the paper's Table 4 beside ours, the intervals beside each figure."""
    lines = _header(report) + _matrices(report) + _table_4(report) + _more_figures(report)
    lines += ["## Image-level figures by score threshold (choose an operating point on validation)", "",
              "| score threshold | TP | FP | FN | TN | precision | recall | F1 | specificity |",
              "|---|---|---|---|---|---|---|---|---|"]
    for point in report["operating_points"]:
        lines.append("| " + " | ".join(_fmt(point[key]) for key in (
            "threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "specificity")) + " |")
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    return "\n".join(lines) + "\n"


def write_report(report, out_dir, records=(), images=None):
    """Write ``report.json``, ``report.md`` and the plots into ``out_dir``; returns the written paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "report.json"), "markdown": os.path.join(out_dir, "report.md")}
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1)
    with open(paths["markdown"], "w") as f:
        f.write(to_markdown(report))
    paths["pr_curves"] = plots.plot_pr_curves(report["curves"], os.path.join(out_dir, "pr_curves.png"))
    counts = {key: report["image_level"][key] for key in ("tp", "fp", "fn", "tn")}
    paths["confusion"] = plots.plot_confusion_matrix(counts, os.path.join(out_dir, "confusion_matrix.png"))
    paths["dice"] = plots.plot_dice_histogram(report["per_slice_dice"], os.path.join(out_dir, "dice_histogram.png"))
    if images:
        chosen = sorted(images)
        paths["overlays"] = plots.plot_overlays(
            [records[i] for i in chosen], [images[i] for i in chosen], os.path.join(out_dir, "overlays.png"),
            report["thresholds"]["score"],
        )
    return paths
