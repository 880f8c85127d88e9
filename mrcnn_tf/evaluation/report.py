"""The evaluation report: every figure from its definition, as ``report.json``, ``report.md`` and plots."""
import json
import os

from mrcnn_tf.evaluation import ap, coco, confusion, overlap, plots

# The paper's Table 4 as printed (testing column); docs/evaluation.md says where it contradicts its Table 3.
PAPER_TABLE_4_TEST = {"precision": 0.937, "recall": 0.882, "f1": 0.803, "iou": 0.833, "map": 0.903}
# The score thresholds of the report's operating-point table (image-level figures at each).
OPERATING_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

DEFINITIONS = {
    "image_level": "An image is predicted positive when it has a detection scoring at least the score threshold, "
                   "actually positive when it has a tumour instance (the paper's Table 1 layout). Precision = "
                   "TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R), accuracy = (TP+TN)/all, specificity = "
                   "TN/(TN+FP); null when the denominator is 0.",
    "operating_points": "The image-level figures at other score thresholds, from the same detections. Choose an "
                        "operating point on a validation split: chosen on the split it is scored on, it is "
                        "optimistic.",
    "iou": "instance_mean: mean mask IoU of the ground-truth instances matched (IoU >= the IoU threshold) by a "
           "detection at or above the score threshold; image_mean: mean over slices with tumour of the IoU of the "
           "union of predicted masks and the union of ground-truth masks.",
    "ap": "Equation (3): detections of all images ranked by score (equal scores as one group), a true positive "
          "when its IoU with a not-yet-matched ground-truth instance is >= 0.5 (the best-IoU one), precision made "
          "monotone from the right, AP = sum of (r_{n+1} - r_n) p_interp(r_{n+1}) over the unique recall points. "
          "Every detection counts, whatever its score. Null, with the reason, when there is no ground truth.",
    "coco": "pycocotools COCOeval: AP averaged over IoU 0.50:0.95, AP50, AP75 (101-point interpolation, which "
            "differs slightly from equation (3)).",
    "dice": "2|P&G|/(|P|+|G|) of the union of predicted masks (score >= threshold) and the ground truth: per slice "
            "with tumour (mean), per patient (all its slices' pixels pooled, mean over patients), global (all "
            "pixels pooled); empty_slices_correct: share of tumour-free slices with nothing predicted.",
}


def build_report(records, score_threshold=0.5, iou_threshold=0.5, source=None, workdir=None):
    """Every figure of the report for ``records`` (a list of ImageRecord) as a JSON-ready dict."""
    counts = confusion.image_level_counts(records, score_threshold)
    box_ap = ap.dataset_ap(records, "box", iou_threshold)
    mask_ap = ap.dataset_ap(records, "mask", iou_threshold)
    has_masks = all(r.det_masks is not None and r.gt_masks is not None for r in records)
    dice = overlap.dice_summary(records, score_threshold) if has_masks else None
    iou = overlap.iou_summary(records, score_threshold, iou_threshold) if has_masks else None
    return {
        "source": source or {},
        "n_images": len(records),
        "n_images_with_tumour": sum(r.has_tumour for r in records),
        "thresholds": {"score": score_threshold, "iou": iou_threshold},
        "image_level": {**counts, **confusion.metrics_from_counts(**counts)},
        "operating_points": confusion.operating_points(records, OPERATING_THRESHOLDS),
        "iou": {key: iou[key] if iou else None for key in ("instance_mean", "image_mean")},
        "ap": {
            "box_ap50": box_ap["ap"], "mask_ap50": mask_ap["ap"],
            "box_reason": box_ap["reason"], "mask_reason": mask_ap["reason"],
        },
        "coco": coco.coco_ap(records, workdir),
        "dice": {key: dice[key] if dice else None
                 for key in ("per_slice_mean", "per_patient_mean", "global", "empty_slices_correct")},
        "curves": {name: {"precision": c["precision"], "recall": c["recall"], "ap": c["ap"]}
                   for name, c in (("box", box_ap), ("mask", mask_ap))},
        "per_slice_dice": dice["per_slice"] if dice else [],
        "definitions": DEFINITIONS,
    }


def _fmt(value):
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def to_markdown(report):
    """``report.md``: the figures as tables, the paper's Table 4 beside ours."""
    il, ap50, cc, dice = report["image_level"], report["ap"], report["coco"], report["dice"]
    paper = PAPER_TABLE_4_TEST
    lines = [
        "# Evaluation report", "",
        f"Source: `{json.dumps(report['source'])}`; {report['n_images']} images "
        f"({report['n_images_with_tumour']} with tumour); score threshold {report['thresholds']['score']}, "
        f"IoU threshold {report['thresholds']['iou']}.", "",
        "## Image-level confusion matrix (paper's Table 1 layout)", "",
        "| | actual positive | actual negative |", "|---|---|---|",
        f"| predicted positive | TP {il['tp']} | FP {il['fp']} |",
        f"| predicted negative | FN {il['fn']} | TN {il['tn']} |", "",
        "## Ours beside the paper's Table 4 (testing column, as printed)", "",
        "| metric | ours | paper |", "|---|---|---|",
        f"| precision | {_fmt(il['precision'])} | {paper['precision']} |",
        f"| recall | {_fmt(il['recall'])} | {paper['recall']} |",
        f"| F1 | {_fmt(il['f1'])} | {paper['f1']} (its own P and R give 0.909) |",
        f"| IoU (instance mean) | {_fmt(report['iou']['instance_mean'])} | {paper['iou']} |",
        f"| mAP: box AP50, eq. (3) | {_fmt(ap50['box_ap50'])} | {paper['map']} (box or mask: not stated) |",
        f"| mAP: mask AP50, eq. (3) | {_fmt(ap50['mask_ap50'])} | |", "",
        "## More figures", "", "| figure | value |", "|---|---|",
        f"| accuracy | {_fmt(il['accuracy'])} |", f"| specificity | {_fmt(il['specificity'])} |",
        f"| IoU (per-image union) | {_fmt(report['iou']['image_mean'])} |",
    ]
    for kind in ("box", "mask"):
        figures = cc.get(kind) or {}
        for key in ("ap", "ap50", "ap75"):
            lines.append(f"| COCO {kind} {key.upper()} | {_fmt(figures.get(key))} |")
    for key in ("per_slice_mean", "per_patient_mean", "global", "empty_slices_correct"):
        lines.append(f"| Dice {key.replace('_', ' ')} | {_fmt(dice[key])} |")
    lines += ["", "## Image-level figures by score threshold (choose an operating point on validation)", "",
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
