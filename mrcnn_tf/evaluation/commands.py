"""What ``evaluate.py`` does in each of its modes; also used by training for its validation report.

On volume data (``data.readers.VOLUME_FORMATS``) a report folder also gets the volume figures
(``evaluation.volumes``: ``volume_report.json`` and ``volume_report.md``).
"""
import dataclasses
import os
import sys

from mrcnn_tf import model_settings
from mrcnn_tf.config import DataConfig
from mrcnn_tf.data import readers, splits
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation import coco, confusion, report, volumes

OVERLAY_TILES = 16
DEFAULT_SCORE_THRESHOLD = 0.5  # the paper's
VALIDATION = "val"  # score_threshold="val": chosen on the validation split


def evaluate_items(detect, reader, items, out_dir, score_threshold=DEFAULT_SCORE_THRESHOLD, source=None,
                   verbose=True):
    """Run the detector ``detect`` (``mrcnn_tf.detectors``) on ``items`` of ``reader``, write the report into
    ``out_dir``; returns the report dict. For volume data, the volume figures of the items' cases too, over their
    whole volumes (``volume_report.json`` / ``.md``; in the returned dict under ``"volumes"``, not in
    ``report.json``)."""
    from mrcnn_tf.evaluation import runner  # imports TensorFlow: not needed by the other modes

    is_volume = getattr(reader, "format", None) in readers.VOLUME_FORMATS
    recording = volumes.RecordingDetector(detect, score_threshold) if is_volume else detect
    keep = splits.spread_indices(OVERLAY_TILES, len(items))
    records, images = runner.predict_records(recording, items, reader, keep_images=keep, verbose=verbose)
    figures = report.build_report(records, score_threshold, source=source, workdir=out_dir)
    report.write_report(figures, out_dir, records, images)
    if is_volume:
        known = {item: recording.painted(index) for index, item in enumerate(items)}
        figures["volumes"] = volumes.evaluate_cases(detect, reader, items, score_threshold, known, verbose)
        volumes.write_volume_report(figures["volumes"], out_dir)
    return figures


def evaluate_run(model_dir, data_root, split, out_dir, score_threshold=DEFAULT_SCORE_THRESHOLD, max_images=None,
                 data_format="auto", weights="final", min_precision=0.0, splits_file=None, data_settings=None,
                 flip_tta=False):
    """``evaluate.py --model MODEL --data PATH --split NAME``: a run's model (its ``"final"`` or ``"best"``
    weights) or an exported SavedModel, as served (``mrcnn_tf.detectors``), on one split of the data.

    The split comes from ``splits_file``, else from the run's ``splits.json`` (for an export: the run folder it
    was exported into, ``RUN/export/<version>``), unless ``split`` is ``"all"``. ``score_threshold`` is a float,
    or ``"val"``: the threshold that maximises the image-level F1 on the validation split among those whose
    validation precision is at least ``min_precision`` (:func:`confusion.f1_best_threshold`), recorded in the
    report's ``source``.

    Volume data is cut and scaled as the model's run recorded it (its configuration's ``data`` section,
    :func:`data_section`), with the fields of ``data_settings`` (a dict, e.g. ``{"slices": "all"}``) changed.
    ``flip_tta``: a run's model with the test-time flip (``detectors.load_detector``), at the threshold choice too.
    """
    from mrcnn_tf import detectors  # TensorFlow only for this mode

    reader = readers.open_dataset(data_root, data_format, data_section(model_dir, data_settings))
    splits_path = splits_file or model_settings.run_file(model_dir, splits.SPLITS_FILE)
    items = _split_items(reader, splits_path, split, model_dir)[:max_images]  # fails before the model loads
    val_items = _split_items(reader, splits_path, VALIDATION, model_dir) if score_threshold == VALIDATION else None
    detect = detectors.load_detector(model_dir, weights, flip_tta)
    source = {"model": model_dir, "weights": weights, "data": data_root, "split": split, "flip_tta": flip_tta}
    if val_items is not None:
        chosen = choose_score_threshold(detect, reader, val_items, min_precision)
        source["score_threshold_chosen_on_val"] = chosen
        if chosen is None:
            print(f"no tumour found on the validation split: score threshold {DEFAULT_SCORE_THRESHOLD}",
                  file=sys.stderr)
        elif not chosen["min_precision_met"]:
            print(f"no score threshold reaches precision {min_precision} on the validation split: the most "
                  f"precise one, {chosen['threshold']:.4f} (precision {chosen['precision']:.4f})", file=sys.stderr)
        score_threshold = DEFAULT_SCORE_THRESHOLD if chosen is None else chosen["threshold"]
    return evaluate_items(detect, reader, items, out_dir, score_threshold, source)


def data_section(model_dir, changes=None):
    """The ``data`` section to read volumes with for the model at ``model_dir``: the one its run or export recorded
    (``model_settings``; the defaults when it recorded none) with ``changes`` (a dict of its fields) applied."""
    recorded = model_settings.recorded_data(model_dir)
    data = recorded.data if recorded is not None else DataConfig()
    return dataclasses.replace(data, **changes) if changes else data


def _split_items(reader, splits_path, split, model_dir):
    """The reader's items of one split (from ``splits_path``), or all of them for ``"all"``."""
    if split == "all":
        return reader.items
    if splits_path is None or not os.path.isfile(splits_path):
        raise DataError(f"{splits_path or model_dir}: no splits file for --split {split}; evaluate with --split "
                        "all, or give the run's splits.json with --splits")
    return splits.select(reader.items, splits.read_splits(splits_path), split)


def choose_score_threshold(detect, reader, items, min_precision=0.0):
    """The image-level F1-best score threshold of the detector ``detect`` on ``items`` among those with precision
    at least ``min_precision`` (None when nothing is found)."""
    from mrcnn_tf.evaluation import runner

    records, _ = runner.predict_records(detect, items, reader)
    return confusion.f1_best_threshold(records, min_precision)


def evaluate_coco_files(ground_truth, detections, out_dir, score_threshold=DEFAULT_SCORE_THRESHOLD):
    """``evaluate.py --ground-truth GT.json --detections RESULTS.json``: score a COCO results file."""
    records, _ = coco.load_coco_ground_truth(ground_truth)
    records = coco.attach_coco_detections(records, detections)
    source = {"ground_truth": ground_truth, "detections": detections}
    figures = report.build_report(records, score_threshold, source=source, workdir=out_dir)
    report.write_report(figures, out_dir, records)
    return figures


def compare_report_folders(folder_a, folder_b, out_dir, data_root=None, data_format="auto", data_settings=None):
    """``evaluate.py --compare A B``: the figures of two report folders of the same images, and the paired
    bootstrap interval of each difference (``evaluation.compare``), written as ``compare.json`` and ``compare.md``
    into ``out_dir``. ``data_root``: the dataset the reports were scored on, for patient ids that the reports'
    ground-truth files lack, read with the ``data`` section's defaults changed by ``data_settings`` (a dict, e.g.
    the modalities of volumes). Returns the comparison dict."""
    from mrcnn_tf.evaluation import compare

    a, b = compare.load_report(folder_a), compare.load_report(folder_b)  # both checked before the dataset is read
    patients = None
    if data_root is not None:
        data = dataclasses.replace(DataConfig(), **(data_settings or {}))
        patients = compare.dataset_patients(readers.open_dataset(data_root, data_format, data))
    comparison = compare.compare_reports(a, b, patients)
    compare.write_comparison(comparison, out_dir)
    return comparison


def counts_summary(tp, fp, fn, tn):
    """``evaluate.py --from-counts``: the image-level figures of a confusion matrix, as printable lines."""
    figures = confusion.metrics_from_counts(tp, fp, fn, tn)
    return [f"{name}: {'n/a' if value is None else f'{value:.4f}'}" for name, value in figures.items()]
