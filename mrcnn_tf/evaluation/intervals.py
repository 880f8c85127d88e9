"""95% intervals for the report's figures: Wilson score intervals for proportions, a bootstrap over patients for
the rest.

Precision, recall and specificity are proportions of counted slices, so each takes a Wilson score interval
(Wilson 1927), which stays within [0, 1] and keeps a sensible width near 0 and 1, where most of these figures lie.

F1, box and mask AP50 and per-patient Dice are not proportions of independent trials; they take a percentile
bootstrap over patients. The slices of one patient are alike (one scan, one tumour), so they move together: a
resample draws as many patients as there are, with replacement, and recomputes the figure from the pooled records
of the drawn patients (a patient drawn twice counts twice). Data without patient ids makes each image its own
unit, which treats slices as independent; the report says so.

Nothing reruns the model, and nothing is matched again: each record's share is computed once (its confusion
cells, its detections' TP / FP status at the IoU threshold, which depends only on its own image) and summed per
patient; a resample only weights the patients by how often it drew them. AP ranks the pooled detections once;
a resample changes their weights, not their order.

Shape letters: ``R`` records, ``U`` units (patients), ``B`` resamples, ``D`` detections pooled over the records,
``P`` groups of equal scores (the points of a precision-recall curve).
"""
import dataclasses
import math
import statistics

import numpy as np

from mrcnn_tf.evaluation import ap, confusion

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0  # fixed, so that a report is reproducible
_AP_BLOCK = 200  # resamples per block of the AP computation: bounds its arrays to [_AP_BLOCK, D]

# Each proportion of a confusion matrix: (the cell counted, the cells of its denominator).
PROPORTIONS = {"precision": ("tp", ("tp", "fp")), "recall": ("tp", ("tp", "fn")),
               "specificity": ("tn", ("tn", "fp"))}


def _normal_quantile(confidence):
    """z such that a standard normal lies within +-z with probability ``confidence`` (1.95996 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes, trials, confidence=CONFIDENCE):
    """Wilson score interval of a binomial proportion.

    With ``p = successes / trials``, ``n = trials`` and ``z`` the normal quantile of the confidence:
    ``(p + z^2 / 2n +- z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)``.

    Args:
      successes, trials: ints, ``0 <= successes <= trials``.
      confidence: float in (0, 1).
    Returns:
      (low, high) floats within [0, 1]; None when ``trials`` is 0 (no proportion to bound).
      Example: 8 of 10 at 0.95 gives (0.4902, 0.9433).
    Raises:
      ValueError: counts out of range, or a confidence outside (0, 1).
    """
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    z = _normal_quantile(confidence)
    if trials == 0:
        return None
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 and at ``trials`` successes the bounds are exactly 0 and 1; rounding would leave them a few ulp off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def proportion(successes, trials, confidence=CONFIDENCE):
    """A proportion with its Wilson interval.

    Returns:
      dict(value, low, high, successes, trials, method="wilson"); value, low and high are None when ``trials``
      is 0.
    """
    bounds = wilson_interval(successes, trials, confidence)
    low, high = (None, None) if bounds is None else bounds
    return dict(value=None if trials == 0 else successes / trials, low=low, high=high,
                successes=int(successes), trials=int(trials), method="wilson")


def proportion_intervals(counts, names=tuple(PROPORTIONS), confidence=CONFIDENCE):
    """Wilson intervals of the named proportions of a confusion matrix.

    Args:
      counts: dict with tp, fp, fn, tn (ints). names: some of ``PROPORTIONS``.
    Returns:
      dict name -> :func:`proportion`.
    """
    out = {}
    for name in names:
        cell, denominator = PROPORTIONS[name]
        out[name] = proportion(counts[cell], sum(counts[c] for c in denominator), confidence)
    return out


# --- the bootstrap over patients ---

def patient_units(records):
    """Which unit of the bootstrap each record belongs to: its patient, or itself without a patient id.

    Returns:
      units ``[R]`` int64 (in order of first appearance), the number of units, and what a unit is:
      ``"patient"``, ``"image"`` (no record has a patient id) or ``"patient, or image where the id is missing"``.
    """
    index = {}
    units = np.array([index.setdefault(r.patient_key, len(index)) for r in records], np.int64)
    with_id = sum(r.patient is not None for r in records)
    if with_id == len(records):
        kind = "patient"
    elif with_id == 0:
        kind = "image"
    else:
        kind = "patient, or image where the id is missing"
    return units, len(index), kind


def unit_weights(n_units, resamples=RESAMPLES, seed=SEED):
    """How often each unit is drawn in each resample: ``n_units`` draws with replacement per resample.

    Returns:
      ``[B, U]`` int64, each row summing to ``n_units``; the same for the same seed.
    """
    draws = np.random.default_rng(seed).integers(0, n_units, size=(resamples, n_units))  # [B, U] unit drawn
    offsets = np.arange(resamples)[:, None] * n_units  # [B, 1] so that bincount counts per row
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_units).reshape(resamples, n_units)


def per_unit_sum(values, units, n_units):
    """``[U, ...]`` float64: the rows of ``values`` ``[R, ...]`` summed per unit (``units`` ``[R]``)."""
    values = np.asarray(values, np.float64)
    out = np.zeros((n_units,) + values.shape[1:], np.float64)
    np.add.at(out, units, values)
    return out


def f1_samples(unit_cells, weights):
    """F1 of each resample's pooled confusion cells.

    Args:
      unit_cells: ``[U, 4]`` cells per unit, columns in ``confusion.CELLS`` order. weights: ``[B, U]``.
    Returns:
      ``[B]`` float64, computed as ``confusion.metrics_from_counts`` does (2PR / (P + R), 0 when P + R = 0); NaN
      where precision or recall is undefined.
    """
    tp, fp, fn = (weights @ unit_cells[:, confusion.CELLS.index(c)] for c in ("tp", "fp", "fn"))  # [B] each
    defined = (tp + fp > 0) & (tp + fn > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return np.where(defined, f1, np.nan)


def proportion_samples(unit_cells, weights, name):
    """A proportion of :data:`PROPORTIONS` (``"precision"``, ...) of each resample's pooled confusion cells.

    Args:
      unit_cells: ``[U, 4]`` cells per unit, columns in ``confusion.CELLS`` order. weights: ``[B, U]``.
    Returns:
      ``[B]`` float64; NaN where the denominator is 0.
    """
    cell, denominator = PROPORTIONS[name]
    counts = {c: weights @ unit_cells[:, confusion.CELLS.index(c)] for c in (cell,) + denominator}  # [B] each
    total = sum(counts[c] for c in denominator)
    return np.divide(counts[cell], total, out=np.full(len(weights), np.nan), where=total > 0)


def mean_samples(unit_values, weights):
    """The mean of per-unit values over each resample's drawn units (a unit counted as often as it is drawn).

    Args:
      unit_values: ``[U]`` float64, NaN where a unit has no value (left out of the mean). weights: ``[B, U]``.
    Returns:
      ``[B]`` float64; NaN where no drawn unit has a value.
    """
    defined = np.isfinite(unit_values)
    counted = weights[:, defined].sum(axis=1)  # [B]
    total = weights[:, defined] @ unit_values[defined]  # [B]
    return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


@dataclasses.dataclass
class RankedDetections:
    """The non-ignored detections of all records, ranked once by descending score (ties grouped).

    Attributes:
      unit: ``[D]`` int64, the unit of each detection's record. is_tp: ``[D]`` float64, 1 for a true positive.
      group_ends: ``[P]`` int64, the last index of each group of equal scores. gt_per_unit: ``[U]`` float64, the
      non-crowd ground-truth instances of each unit.
    """

    unit: np.ndarray
    is_tp: np.ndarray
    group_ends: np.ndarray
    gt_per_unit: np.ndarray


def rank_detections(records, units, n_units, kind, iou_threshold=0.5):
    """Match each record's detections once (``ap.record_matches``) and rank them all, as ``ap.dataset_ap`` does.

    Args:
      records: list of ImageRecord. units: ``[R]`` from :func:`patient_units`. n_units: U.
      kind: ``"box"`` or ``"mask"``. iou_threshold: the least IoU of a true positive.
    Returns:
      a :class:`RankedDetections`.
    """
    scores, is_tp, unit = [np.zeros(0)], [np.zeros(0, bool)], [np.zeros(0, np.int64)]
    for record, record_unit in zip(records, units):
        record_scores, record_tp, ignored = ap.record_matches(record, kind, iou_threshold)
        scores.append(record_scores[~ignored])
        is_tp.append(record_tp[~ignored])
        unit.append(np.full(int((~ignored).sum()), record_unit, np.int64))
    scores = np.concatenate(scores)
    order = np.argsort(-scores, kind="stable")  # [D] best first
    scores = scores[order]
    group_ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True)) if len(scores) else np.zeros(0, int)
    gt_per_unit = per_unit_sum([(~r.gt_crowd).sum() for r in records], units, n_units)
    return RankedDetections(np.concatenate(unit)[order], np.concatenate(is_tp)[order].astype(np.float64),
                            group_ends, gt_per_unit)


def ap_samples(ranked, weights):
    """AP by equation (3) of each resample, from detections ranked once.

    A unit drawn k times weighs its detections and ground truths by k: the cumulative TP and detection counts at
    each group end are those of the pooled records of the resample, so the precision-recall points are too. On
    weights of all 1 this is ``ap.dataset_ap`` operation for operation.

    Args:
      ranked: :class:`RankedDetections`. weights: ``[B, U]``.
    Returns:
      ``[B]`` float64; NaN where a resample has no ground truth (AP undefined).
    """
    out = np.empty(len(weights), np.float64)
    for start in range(0, len(weights), _AP_BLOCK):
        out[start:start + _AP_BLOCK] = _ap_block(ranked, weights[start:start + _AP_BLOCK])
    return out


def _ap_block(ranked, weights):
    """:func:`ap_samples` of one block of resamples ``[b, U]``."""
    weight = weights[:, ranked.unit].astype(np.float64)  # [b, D], each detection weighted by its unit's draws
    cum_detections = np.cumsum(weight, axis=1)[:, ranked.group_ends]  # [b, P]
    cum_tp = np.cumsum(weight * ranked.is_tp, axis=1)[:, ranked.group_ends]  # [b, P]
    num_gt = weights @ ranked.gt_per_unit  # [b]
    # Groups of units not drawn leave a point where nothing is counted yet: precision 0 there, at recall 0.
    precision = np.divide(cum_tp, cum_detections, out=np.zeros_like(cum_tp), where=cum_detections > 0)
    recall = np.divide(cum_tp, num_gt[:, None], out=np.zeros_like(cum_tp), where=num_gt[:, None] > 0)
    p_interp = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # [b, P], monotone from the right
    first = np.ones(recall.shape, bool)  # [b, P], the first point of each recall value
    first[:, 1:] = recall[:, 1:] != recall[:, :-1]
    # Row by row, so that each sum adds the same terms in the same order as ap.average_precision.
    values = [np.sum(np.diff(r[f], prepend=0.0) * p[f]) for r, p, f in zip(recall, p_interp, first)]
    return np.where(num_gt > 0, np.asarray(values, np.float64).reshape(-1), np.nan)


def bootstrap_figure(value, samples, confidence=CONFIDENCE):
    """A figure with the percentile interval of its bootstrap samples.

    Args:
      value: the figure on the data as it is (float or None). samples: ``[B]`` float64, NaN = undefined.
    Returns:
      dict(value, low, high, method="bootstrap", undefined_resamples=int: resamples where the figure is
      undefined, left out of the percentiles). low and high are None when value is None or no sample is defined.
    """
    samples = np.asarray(samples, np.float64)
    defined = samples[np.isfinite(samples)]
    low = high = None
    if value is not None and len(defined):
        tail = 50 * (1 - confidence)
        low, high = (float(x) for x in np.percentile(defined, [tail, 100 - tail]))
    return dict(value=value, low=low, high=high, method="bootstrap",
                undefined_resamples=int(len(samples) - len(defined)))


def dice_per_unit(per_patient_dice, records, units, n_units):
    """``[U]`` float64: each unit's Dice from ``dice_summary``'s per-patient dict (NaN where None)."""
    values = np.full(n_units, np.nan)
    for record, unit in zip(records, units):
        dice = per_patient_dice.get(record.patient_key)
        values[unit] = np.nan if dice is None else dice
    return values


def report_intervals(records, figures, per_patient_dice=None, resamples=RESAMPLES, seed=SEED,
                     confidence=CONFIDENCE):
    """The report's ``intervals`` section, from the records and the report's own figures.

    Args:
      records: list of ImageRecord. figures: the report (``report.build_report``) without its intervals: it
      reads ``thresholds``, ``image_level``, ``image_level_localised``, ``ap`` and ``dice``.
      per_patient_dice: ``overlap.dice_summary``'s ``per_patient`` dict, or None without masks.
      resamples, seed, confidence: of the bootstrap and the intervals.
    Returns:
      dict(confidence, bootstrap=dict(unit, n_units, resamples, seed, interval), image_level=dict(precision,
      recall, specificity: :func:`proportion`; f1: :func:`bootstrap_figure`), image_level_localised=dict(precision,
      recall, f1), ap=dict(box_ap50, mask_ap50), dice=dict(per_patient_mean)).
    """
    score_threshold, iou_threshold = figures["thresholds"]["score"], figures["thresholds"]["iou"]
    localised = figures["image_level_localised"]
    units, n_units, unit_kind = patient_units(records)
    weights = unit_weights(n_units, resamples, seed)  # [B, U], one set of draws for every figure

    def f1(cells, value):
        return bootstrap_figure(value, f1_samples(per_unit_sum(cells, units, n_units), weights), confidence)

    def ap50(kind):
        value = figures["ap"][f"{kind}_ap50"]
        if value is None:
            return bootstrap_figure(None, [], confidence)
        ranked = rank_detections(records, units, n_units, kind, iou_threshold)
        return bootstrap_figure(value, ap_samples(ranked, weights), confidence)

    dice_value = figures["dice"]["per_patient_mean"]
    dice_samples = ([] if per_patient_dice is None or dice_value is None else
                    mean_samples(dice_per_unit(per_patient_dice, records, units, n_units), weights))
    localised_cells = confusion.localised_cells(records, score_threshold, iou_threshold, localised["matched_by"])
    return {
        "confidence": confidence,
        "bootstrap": {"unit": unit_kind, "n_units": n_units, "resamples": resamples, "seed": seed,
                      "interval": "percentile"},
        "image_level": {**proportion_intervals(figures["image_level"], confidence=confidence),
                        "f1": f1(confusion.image_level_cells(records, score_threshold), figures["image_level"]["f1"])},
        "image_level_localised": {**proportion_intervals(localised, ("precision", "recall"), confidence),
                                  "f1": f1(localised_cells, localised["f1"])},
        "ap": {"box_ap50": ap50("box"), "mask_ap50": ap50("mask")},
        "dice": {"per_patient_mean": bootstrap_figure(dice_value, dice_samples, confidence)},
    }
