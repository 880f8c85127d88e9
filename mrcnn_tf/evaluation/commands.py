"""What ``evaluate.py`` does in each of its modes; also used by training for its validation report."""
import os
import sys

from mrcnn_tf.data import readers, splits
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation import coco, confusion, report

OVERLAY_TILES = 16
DEFAULT_SCORE_THRESHOLD = 0.5  # the paper's
VALIDATION = "val"  # score_threshold="val": chosen on the validation split


def evaluate_items(model, reader, items, out_dir, score_threshold=DEFAULT_SCORE_THRESHOLD, source=None, verbose=True):
    """Run ``model`` on ``items`` of ``reader``, write the report into ``out_dir``; returns the report dict."""
    from mrcnn_tf.evaluation import runner  # imports TensorFlow: not needed by the other modes

    keep = splits.spread_indices(OVERLAY_TILES, len(items))
    records, images = runner.predict_records(model, items, reader, keep_images=keep, verbose=verbose)
    figures = report.build_report(records, score_threshold, source=source, workdir=out_dir)
    report.write_report(figures, out_dir, records, images)
    return figures


def evaluate_run(run_dir, data_root, split, out_dir, score_threshold=DEFAULT_SCORE_THRESHOLD, max_images=None,
                 data_format="auto", weights="final", min_precision=0.0):
    """``evaluate.py --model RUN --data PATH --split NAME``: the run's model (its ``"final"`` or ``"best"``
    weights) on one split of the data.

    ``score_threshold`` is a float, or ``"val"``: the threshold that maximises the image-level F1 on the run's
    validation split among those whose validation precision is at least ``min_precision``
    (:func:`confusion.f1_best_threshold`), recorded in the report's ``source``.
    """
    from mrcnn_tf.runs import load_run  # TensorFlow only for this mode

    reader = readers.open_dataset(data_root, data_format)
    items = _split_items(reader, run_dir, split)[:max_images]  # a bad split fails before the model loads
    val_items = _split_items(reader, run_dir, VALIDATION) if score_threshold == VALIDATION else None
    model = load_run(run_dir, weights)
    source = {"model": run_dir, "weights": weights, "data": data_root, "split": split}
    if val_items is not None:
        chosen = choose_score_threshold(model, reader, val_items, min_precision)
        source["score_threshold_chosen_on_val"] = chosen
        if chosen is None:
            print(f"no tumour found on the validation split: score threshold {DEFAULT_SCORE_THRESHOLD}",
                  file=sys.stderr)
        elif not chosen["min_precision_met"]:
            print(f"no score threshold reaches precision {min_precision} on the validation split: the most "
                  f"precise one, {chosen['threshold']:.4f} (precision {chosen['precision']:.4f})", file=sys.stderr)
        score_threshold = DEFAULT_SCORE_THRESHOLD if chosen is None else chosen["threshold"]
    return evaluate_items(model, reader, items, out_dir, score_threshold, source)


def _split_items(reader, run_dir, split):
    """The reader's items of one split of the run (``RUN/splits.json``), or all of them for ``"all"``."""
    if split == "all":
        return reader.items
    path = os.path.join(run_dir, splits.SPLITS_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{path}: the run has no splits file; evaluate with --split all")
    return splits.select(reader.items, splits.read_splits(path), split)


def choose_score_threshold(model, reader, items, min_precision=0.0):
    """The image-level F1-best score threshold of ``model`` on ``items`` among those with precision at least
    ``min_precision`` (None when nothing is found)."""
    from mrcnn_tf.evaluation import runner

    records, _ = runner.predict_records(model, items, reader)
    return confusion.f1_best_threshold(records, min_precision)


def evaluate_coco_files(ground_truth, detections, out_dir, score_threshold=DEFAULT_SCORE_THRESHOLD):
    """``evaluate.py --ground-truth GT.json --detections RESULTS.json``: score a COCO results file."""
    records, _ = coco.load_coco_ground_truth(ground_truth)
    records = coco.attach_coco_detections(records, detections)
    source = {"ground_truth": ground_truth, "detections": detections}
    figures = report.build_report(records, score_threshold, source=source, workdir=out_dir)
    report.write_report(figures, out_dir, records)
    return figures


def counts_summary(tp, fp, fn, tn):
    """``evaluate.py --from-counts``: the image-level figures of a confusion matrix, as printable lines."""
    figures = confusion.metrics_from_counts(tp, fp, fn, tn)
    return [f"{name}: {'n/a' if value is None else f'{value:.4f}'}" for name, value in figures.items()]
