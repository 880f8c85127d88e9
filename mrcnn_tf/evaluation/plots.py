"""Evaluation figures written as PNG files: precision-recall curves, the confusion matrix, the Dice histogram and
a page of overlays.

Every figure is a ``matplotlib.figure.Figure`` drawn by its own Agg canvas and cleared once saved, so nothing goes
through pyplot: no global figure registry, no interactive backend, nothing left open between calls.

Shape letters: ``H, W`` an image's own height and width, ``G`` ground-truth instances, ``n`` detections kept
above the score threshold, ``T`` tiles on the overlay page.
"""
import contextlib
import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mrcnn_tf import visualize

PR_TITLE = "Precision-recall (IoU 0.5, equation 3)"
OVERLAY_LEGEND = "green = ground truth, red = prediction"
MIN_TILE_PIXELS = 256  # the score text drawn at the image's own size is unreadable on a 32-256 px slice
DPI = 100
CONFUSION_KEYS = ("tp", "fp", "fn", "tn")


@contextlib.contextmanager
def _figure(path, figsize):
    """Yield a fresh Agg-backed figure; save it to ``path`` as PNG on a clean exit, clear it in every case."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    try:
        yield fig
        fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)  # no clipped tick labels
    finally:
        fig.clear()


def _message(fig, text):
    """Write ``text`` in the middle of an otherwise empty figure."""
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, transform=ax.transAxes)


# --- precision-recall ---------------------------------------------------------------------------------------

def _ap_label(name, ap):
    """Legend text of one curve: ``"box AP50 = 0.912"``, or ``"box AP50 = n/a"`` when there is no AP."""
    return f"{name} AP50 = {'n/a' if ap is None else f'{ap:.3f}'}"


def plot_pr_curves(curves, path):
    """Step plot of precision against recall, one line per curve, the AP of each in the legend.

    Args:
      curves: dict name -> dict(precision=list ``[P]``, recall=list ``[P]``, ap=float or None), e.g. keys
        ``"box"`` and ``"mask"``. Recall increasing; a curve may be empty (no detection).
      path: where to write the PNG.
    Returns:
      ``path``.
    Raises:
      ValueError: a curve whose precision and recall lengths differ.
    """
    with _figure(path, (6, 5)) as fig:
        ax = fig.add_subplot()
        for name, curve in curves.items():
            precision, recall = list(curve["precision"]), list(curve["recall"])
            if len(precision) != len(recall):
                raise ValueError(f"curve {name!r}: {len(precision)} precision values but {len(recall)} recall "
                                 "values, expected the same number")
            # "pre": the precision at recall r_k holds over (r_{k-1}, r_k], the rectangles summed by equation 3,
            # whose sum starts at recall 0.
            if recall and recall[0] > 0:
                recall, precision = [0.0] + recall, precision[:1] + precision
            ax.step(recall, precision, where="pre", label=_ap_label(name, curve.get("ap")))
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=PR_TITLE)
        ax.grid(True, alpha=0.4)
        if curves:
            ax.legend(loc="lower left")
    return path


# --- confusion matrix ---------------------------------------------------------------------------------------

def _confusion_table(counts):
    """The paper's Table 1 layout ``[2, 2]`` int64: rows predicted +/-, columns actual +/-."""
    missing = [key for key in CONFUSION_KEYS if key not in counts]
    if missing:
        raise ValueError(f"confusion counts lack {missing}, expected keys {list(CONFUSION_KEYS)}")
    return np.array([[counts["tp"], counts["fp"]], [counts["fn"], counts["tn"]]], np.int64)


def plot_confusion_matrix(counts, path):
    """The image-level confusion matrix as a 2x2 grid with the counts written in the cells.

    Args:
      counts: dict(tp=int, fp=int, fn=int, tn=int).
      path: where to write the PNG.
    Returns:
      ``path``.
    Raises:
      ValueError: a count is missing.
    """
    table = _confusion_table(counts)
    names = [["TP", "FP"], ["FN", "TN"]]
    with _figure(path, (5, 4.5)) as fig:
        ax = fig.add_subplot()
        ax.imshow(table, cmap="Blues", vmin=0, vmax=max(int(table.max()), 1))
        for row in range(2):
            for col in range(2):
                dark = table[row, col] > table.max() / 2
                ax.text(col, row, f"{names[row][col]}\n{table[row, col]}", ha="center", va="center",
                        fontsize=16, color="white" if dark else "black")
        ax.set_xticks([0, 1], ["actual positive", "actual negative"])
        ax.set_yticks([0, 1], ["predicted positive", "predicted negative"])
        ax.set_title("Confusion matrix (image level)")
    return path


# --- Dice histogram -----------------------------------------------------------------------------------------

def plot_dice_histogram(values, path):
    """Histogram (20 bins over [0, 1]) of per-slice Dice values, mean and median in the title.

    Args:
      values: list of floats in [0, 1], one per slice with tumour; may be empty.
      path: where to write the PNG.
    Returns:
      ``path``.
    Raises:
      ValueError: a value outside [0, 1] or not a number.
    """
    values = np.asarray(values, np.float64).reshape(-1)
    if not np.all((values >= 0) & (values <= 1)):  # also catches NaN
        raise ValueError(f"Dice values must lie in [0, 1], got min {values.min()} max {values.max()}")
    with _figure(path, (6, 4)) as fig:
        if values.size == 0:
            _message(fig, "no slice with tumour")
        else:
            _dice_histogram(fig.add_subplot(), values)
    return path


def _dice_histogram(ax, values):
    """Draw the histogram of ``values`` ``[S]`` (S >= 1) on ``ax``."""
    ax.hist(values, bins=20, range=(0, 1), color="tab:blue", edgecolor="white")
    ax.set(xlim=(0, 1), xlabel="Dice", ylabel="slices",
           title=f"Dice per slice (n = {values.size}): mean = {values.mean():.3f}, "
                 f"median = {np.median(values):.3f}")
    ax.grid(True, axis="y", alpha=0.4)


# --- learning curve -----------------------------------------------------------------------------------------

LOSS_CURVES = ("loss", "rpn_objectness", "rpn_box", "cls", "box", "mask")
VALIDATION_CURVES = ("val_box_ap50", "val_mask_ap50", "val_f1")


def moving_average(values, window):
    """Trailing mean of ``values`` ``[N]`` over up to ``window`` points (shorter at the start), ``[N]``."""
    values = np.asarray(values, np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_learning_curve(steps, history, path, window=50):
    """Training losses (moving average over ``window`` steps) and validation figures against the step.

    Args:
      steps: dict column -> array ``[N]`` of a run's ``steps.csv`` (``step`` and the loss columns).
      history: dict column -> array ``[E]`` of its ``history.csv`` (``step`` and ``val_*`` columns; NaN where
        an epoch was not validated).
      path: where to write the PNG.
    Returns:
      ``path``.
    """
    with _figure(path, (12, 4.5)) as fig:
        losses, figures = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        for name in LOSS_CURVES:
            if name in steps and len(steps[name]):
                losses.plot(steps["step"], moving_average(steps[name], window), label=name,
                            linewidth=2 if name == "loss" else 1)
        losses.set(yscale="log", xlabel="step", ylabel=f"loss (mean of the last {window} steps)",
                   title="training losses")
        losses.legend(fontsize=8)
        losses.grid(True, alpha=0.4)
        for name in VALIDATION_CURVES:
            values = np.asarray(history.get(name, []), np.float64)
            shown = np.isfinite(values)
            if shown.any():
                figures.plot(np.asarray(history["step"])[shown], values[shown], marker="o", label=name)
        figures.set(ylim=(0, 1), xlabel="step", ylabel="validation figure", title="validation (equation 3, F1)")
        figures.legend(fontsize=8, loc="lower right")
        figures.grid(True, alpha=0.4)
    return path


# --- overlays -----------------------------------------------------------------------------------------------

def _evenly_spread(indices, count):
    """``count`` members of ``indices`` at evenly spread positions, first and last included."""
    positions = np.linspace(0, len(indices) - 1, count).round().astype(int)  # distinct since count <= len
    return [indices[p] for p in positions]


def overlay_indices(records, max_tiles):
    """Which records go on the overlay page: all of them when they fit, otherwise an evenly spread sample in
    which slices with and without tumour both appear, shared in proportion to their numbers.

    Returns:
      sorted list of at most ``max_tiles`` record indices.
    """
    if len(records) <= max_tiles:
        return list(range(len(records)))
    positive = [i for i, record in enumerate(records) if record.has_tumour]
    negative = [i for i, record in enumerate(records) if not record.has_tumour]
    if not positive or not negative or max_tiles < 2:
        return _evenly_spread(list(range(len(records))), max_tiles)
    share = round(max_tiles * len(positive) / len(records))
    n_positive = min(max(share, 1, max_tiles - len(negative)), len(positive), max_tiles - 1)
    return sorted(_evenly_spread(positive, n_positive) + _evenly_spread(negative, max_tiles - n_positive))


def _box_masks(boxes, height, width):
    """Filled boxes ``[n, 4]`` as masks ``[n, H, W]`` uint8, whose contours are the box outlines."""
    masks = np.zeros((len(boxes), height, width), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(masks, np.asarray(boxes, np.float64)):
        top, left = max(int(math.floor(y1)), 0), max(int(math.floor(x1)), 0)
        mask[top:max(int(math.ceil(y2)), top + 1), left:max(int(math.ceil(x2)), left + 1)] = 1
    return masks


def _detections_above(record, score_threshold):
    """The detections of ``record`` scoring at least ``score_threshold``, as ``visualize.draw_overlay`` wants
    them: boxes ``[n, 4]``, scores ``[n]``, masks ``[n, H, W]`` (filled boxes when the record has no masks)."""
    keep = record.detections_above(score_threshold)
    boxes = record.det_boxes[keep]
    if record.det_masks is None:
        masks = _box_masks(boxes, record.height, record.width)
    else:
        masks = record.det_masks[keep]
    return {"boxes": boxes, "scores": record.det_scores[keep], "masks": masks}


def overlay_tile(record, image, score_threshold):
    """One overlay tile: ``visualize.draw_overlay`` of ``image`` with the record's ground truth and its detections
    scoring at least ``score_threshold``, enlarged by a whole factor (nearest neighbour) to at least 256 px.

    Args:
      record: an ImageRecord. image: ``[H, W, 3]`` uint8 at the record's size.
    Returns:
      ``[s * H, s * W, 3]`` uint8 with ``s = max(1, ceil(256 / min(H, W)))``.
    Raises:
      ValueError: ``image`` is not ``[H, W, 3]`` at the record's size.
    """
    if image.shape != (record.height, record.width, 3):
        raise ValueError(f"{record.file_name}: image of shape {image.shape}, expected "
                         f"({record.height}, {record.width}, 3)")
    gt_masks = record.gt_masks
    if gt_masks is None:
        gt_masks = _box_masks(record.gt_boxes, record.height, record.width)
    canvas = visualize.draw_overlay(image, gt_masks, _detections_above(record, score_threshold))
    scale = max(1, math.ceil(MIN_TILE_PIXELS / min(record.height, record.width)))
    return canvas.repeat(scale, axis=0).repeat(scale, axis=1)


def plot_overlays(records, images, path, score_threshold, max_tiles=16, columns=4):
    """A page of overlay tiles (see ``overlay_tile``), each titled with its file name, at most ``max_tiles`` of
    them chosen by ``overlay_indices``, ``columns`` to a row, with a colour legend underneath.

    Args:
      records: list of ImageRecord; may be empty.
      images: list of ``[H, W, 3]`` uint8, aligned with ``records``.
      path: where to write the PNG.
      score_threshold: detections scoring below it are not drawn.
      max_tiles, columns: positive ints.
    Returns:
      ``path``.
    Raises:
      ValueError: ``images`` not aligned with ``records``, ``max_tiles`` or ``columns`` below 1, or an image not
      at its record's size.
    """
    if len(images) != len(records):
        raise ValueError(f"{len(images)} images for {len(records)} records, expected one image per record")
    if max_tiles < 1 or columns < 1:
        raise ValueError(f"max_tiles={max_tiles}, columns={columns}: expected both at least 1")
    tiles = [(records[i], overlay_tile(records[i], images[i], score_threshold))
             for i in overlay_indices(records, max_tiles)]  # T tiles
    if not tiles:
        with _figure(path, (6, 3)) as fig:
            _message(fig, "no records to show")
        return path
    _draw_tile_page(tiles, path, score_threshold, columns)
    return path


def _draw_tile_page(tiles, path, score_threshold, columns):
    """Lay ``tiles`` (record, ``[h, w, 3]`` uint8) out in a grid sized so that each shows near its own size."""
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    tile_h = max(tile.shape[0] for _, tile in tiles) / DPI
    tile_w = max(tile.shape[1] for _, tile in tiles) / DPI
    with _figure(path, (columns * (tile_w + 0.2), rows * (tile_h + 0.45) + 0.4)) as fig:
        axes = fig.subplots(rows, columns, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, (record, tile) in zip(axes.flat, tiles):
            ax.imshow(tile, interpolation="nearest")
            ax.set_title(os.path.basename(record.file_name), fontsize=8)
        # Black text on purpose: the page's only red and green pixels are then the drawn contours and scores.
        fig.text(0.5, 0.01, f"{OVERLAY_LEGEND} (score >= {score_threshold:.2f})", ha="center", va="bottom",
                 fontsize=10)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
