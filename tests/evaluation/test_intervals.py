"""Tests for mrcnn_tf/evaluation/intervals.py: Wilson intervals worked out by hand, the bootstrap over patients on
cases whose resamples can be listed, and the re-pooled AP against ``ap.dataset_ap``.

Slices are 8 x 8 with rectangle masks (``rect_records``).
"""
import dataclasses
import time

import numpy as np
import pytest

from mrcnn_tf.evaluation import ap, confusion, intervals, overlap
from mrcnn_tf.evaluation.records import ImageRecord
from rect_records import BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT, WHOLE
from rect_records import record as _record


# --- Wilson score intervals ---

def test_wilson_interval_by_hand():
    # 8 of 10 at 95%: z = 1.9599640, z^2 = 3.8414588, p = 0.8, n = 10, 1 + z^2/n = 1.3841459;
    #   centre = (0.8 + 3.8414588 / 20) / 1.3841459 = 0.9920729 / 1.3841459 = 0.7167402
    #   half = 1.9599640 * sqrt(0.8 * 0.2 / 10 + 3.8414588 / 400) / 1.3841459 = 1.9599640 * 0.1600114 / 1.3841459
    #        = 0.2265777
    #   -> (0.4901625, 0.9433178), the textbook (0.490, 0.943).
    low, high = intervals.wilson_interval(8, 10)
    assert low == pytest.approx(0.4901625, abs=1e-6) and high == pytest.approx(0.9433178, abs=1e-6)
    # 0 of 10: centre = half = (z^2 / 20) / 1.3841459 -> (0, z^2 / (n + z^2)) = (0, 3.8414588 / 13.8414588).
    assert intervals.wilson_interval(0, 10) == (0.0, pytest.approx(3.8414588 / 13.8414588, abs=1e-6))
    # 10 of 10 mirrors it: (n / (n + z^2), 1).
    assert intervals.wilson_interval(10, 10) == (pytest.approx(10 / 13.8414588, abs=1e-6), 1.0)
    # B6's precision in benchmarks/RESULTS.md, 78 of 79: 0.932-0.998.
    low, high = intervals.wilson_interval(78, 79)
    assert (round(low, 3), round(high, 3)) == (0.932, 0.998)


def test_wilson_interval_narrows_with_more_trials_and_widens_with_confidence():
    narrow, wide = intervals.wilson_interval(80, 100), intervals.wilson_interval(8, 10)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]
    low99, high99 = intervals.wilson_interval(8, 10, confidence=0.99)
    assert low99 < wide[0] and high99 > wide[1]


def test_wilson_interval_without_trials_and_bad_input():
    assert intervals.wilson_interval(0, 0) is None
    for successes, trials in ((3, 2), (-1, 4)):
        with pytest.raises(ValueError, match="successes"):
            intervals.wilson_interval(successes, trials)
    with pytest.raises(ValueError, match="confidence"):
        intervals.wilson_interval(1, 2, confidence=1.0)


def test_proportion_intervals_of_the_papers_test_counts():
    # Table 3, testing: TP 15, FP 1, FN 2, TN 7 -> precision 15/16, recall 15/17, specificity 7/8.
    out = intervals.proportion_intervals(dict(tp=15, fp=1, fn=2, tn=7))
    assert (out["precision"]["successes"], out["precision"]["trials"]) == (15, 16)
    assert (out["recall"]["successes"], out["recall"]["trials"]) == (15, 17)
    assert (out["specificity"]["successes"], out["specificity"]["trials"]) == (7, 8)
    assert out["precision"]["value"] == 0.9375 and out["precision"]["method"] == "wilson"
    assert (out["precision"]["low"], out["precision"]["high"]) == intervals.wilson_interval(15, 16)
    nothing = intervals.proportion_intervals(dict(tp=0, fp=0, fn=3, tn=2), ("precision",))
    assert nothing == {"precision": dict(value=None, low=None, high=None, successes=0, trials=0, method="wilson")}


# --- units and resampling ---

def test_proportion_samples_pool_the_drawn_units_cells():
    # Two units: (tp, fp, fn, tn) = (3, 1, 0, 0) and (0, 0, 2, 5). Drawn (2, 0): precision 6/8, recall 6/6,
    # specificity 0/2. Drawn (0, 2): precision undefined (nothing called positive), recall 0/4, specificity 10/10.
    # Drawn (1, 1): precision 3/4, recall 3/5, specificity 5/6.
    cells = np.array([[3, 1, 0, 0], [0, 0, 2, 5]], np.float64)
    weights = np.array([[2, 0], [0, 2], [1, 1]])
    np.testing.assert_allclose(intervals.proportion_samples(cells, weights, "precision"), [0.75, np.nan, 0.75])
    np.testing.assert_allclose(intervals.proportion_samples(cells, weights, "recall"), [1.0, 0.0, 0.6])
    np.testing.assert_allclose(intervals.proportion_samples(cells, weights, "specificity"), [0.0, 1.0, 5 / 6])


def test_patient_units_group_slices_and_fall_back_to_images():
    records = [_record("A"), _record("B"), _record("A")]
    units, n_units, kind = intervals.patient_units(records)
    assert units.tolist() == [0, 1, 0] and n_units == 2 and kind == "patient"
    units, n_units, kind = intervals.patient_units([_record(None), _record(None)])
    assert units.tolist() == [0, 1] and n_units == 2 and kind == "image"
    _, n_units, kind = intervals.patient_units([_record("A"), _record(None), _record("A")])
    assert n_units == 2 and kind == "patient, or image where the id is missing"


def test_unit_weights_draw_each_resample_with_replacement_from_a_fixed_seed():
    weights = intervals.unit_weights(5, resamples=300, seed=3)
    assert weights.shape == (300, 5) and (weights.sum(axis=1) == 5).all() and (weights >= 0).all()
    assert (weights.max(axis=1) > 1).any()  # with replacement: some unit drawn twice
    np.testing.assert_array_equal(weights, intervals.unit_weights(5, resamples=300, seed=3))
    assert not np.array_equal(weights, intervals.unit_weights(5, resamples=300, seed=4))


def _patient(name):
    """Three slices: a tumour found in place (0.9), a tumour with its detection elsewhere (0.8), and a tumour-free
    slice with a false detection over the whole slice (0.7).

    Paper's count TP 2, FP 1 -> P 2/3, R 1, F1 0.8; localisation-aware TP 1, FP 2, FN 1 -> P 1/3, R 1/2, F1 0.4.
    Ranked: 0.9 TP, 0.8 FP, 0.7 FP with 2 ground truths -> box and mask AP50 = 0.5 * 1 = 0.5.
    Dice of the patient: 2 * 16 / ((16 + 16) + (16 + 16) + (0 + 64)) = 32 / 128 = 0.25.
    """
    return [_record(name, [TOP_LEFT], [TOP_LEFT], [0.9]), _record(name, [BOTTOM_RIGHT], [TOP_RIGHT], [0.8]),
            _record(name, [], [WHOLE], [0.7])]


def _figures(records, **kwargs):
    from mrcnn_tf.evaluation import report

    return report.build_report(records, score_threshold=0.5, **kwargs)


def test_identical_patients_give_zero_width_intervals():
    records = _patient("A") + _patient("B") + _patient("C")
    figures = _figures(records)
    assert figures["image_level"]["f1"] == pytest.approx(0.8)
    assert figures["image_level_localised"]["f1"] == pytest.approx(0.4)
    assert figures["ap"]["box_ap50"] == 0.5 and figures["dice"]["per_patient_mean"] == 0.25
    ci = figures["intervals"]
    assert ci["bootstrap"] == dict(unit="patient", n_units=3, resamples=1000, seed=0, interval="percentile")
    for entry in (ci["image_level"]["f1"], ci["image_level_localised"]["f1"], ci["ap"]["box_ap50"],
                  ci["ap"]["mask_ap50"], ci["dice"]["per_patient_mean"]):
        assert entry["low"] == entry["high"] == entry["value"]  # every resample is the same three patients
        assert entry["method"] == "bootstrap" and entry["undefined_resamples"] == 0


def _two_patients():
    """A: one tumour slice found in place. B: one tumour slice missed, one tumour-free slice with a false alarm.

    The four equally likely draws of two patients: AA, AB, BA, BB.
      F1 (paper's count): AA TP 2 -> 1; AB TP 1, FP 1, FN 1 -> 0.5; BB TP 0, FP 2, FN 2 -> 0.
      box AP50: AA 1; AB ranked 0.9 TP, 0.8 FP with 2 ground truths -> 0.5; BB no TP -> 0.
      Dice per patient: A 1, B 0 (nothing right in its slices) -> AA 1, AB 0.5, BB 0.
    """
    return [_record("A", [TOP_LEFT], [TOP_LEFT], [0.9]),
            _record("B", [BOTTOM_RIGHT]), _record("B", [], [(0, 0, 2, 2)], [0.8])]


def test_two_patients_resample_to_the_three_outcomes_of_their_draws():
    records = _two_patients()
    units, n_units, _ = intervals.patient_units(records)
    weights = intervals.unit_weights(n_units)
    aa, bb = weights[:, 0] == 2, weights[:, 1] == 2
    expected = np.where(aa, 1.0, np.where(bb, 0.0, 0.5))  # [B] the figure of each draw, worked out above
    cells = intervals.per_unit_sum(confusion.image_level_cells(records, 0.5), units, n_units)
    np.testing.assert_array_equal(intervals.f1_samples(cells, weights), expected)
    ranked = intervals.rank_detections(records, units, n_units, "box")
    np.testing.assert_array_equal(intervals.ap_samples(ranked, weights), expected)
    np.testing.assert_array_equal(intervals.mean_samples(np.array([1.0, 0.0]), weights), expected)
    # Draws AA and BB are a quarter each, so the 2.5th and 97.5th percentiles are 0 and 1.
    assert 0.2 < aa.mean() < 0.3 and 0.2 < bb.mean() < 0.3
    ci = _figures(records)["intervals"]
    for entry in (ci["image_level"]["f1"], ci["ap"]["box_ap50"], ci["dice"]["per_patient_mean"]):
        assert entry["value"] == 0.5 and (entry["low"], entry["high"]) == (0.0, 1.0)


def test_resamples_without_a_defined_figure_are_counted_and_left_out():
    # B alone has no tumour: in draw BB recall, F1 and AP are undefined (no ground truth).
    records = [_record("A", [TOP_LEFT], [TOP_LEFT], [0.9]), _record("B", [], [WHOLE], [0.8])]
    figures = _figures(records)
    weights = intervals.unit_weights(2)
    undefined = int((weights[:, 1] == 2).sum())
    assert undefined > 0
    for entry in (figures["intervals"]["image_level"]["f1"], figures["intervals"]["ap"]["box_ap50"]):
        assert entry["undefined_resamples"] == undefined and entry["low"] is not None


def _varied_records():
    """Five patients of 16 x 16 slices: random 5 x 5 tumours and detections, a detection shifted one pixel off a
    tumour (IoU 20/30, a match), scores in steps of 0.1 so that ties occur across patients, tumour-free slices, and
    a crowd region with a detection on it."""
    rng = np.random.default_rng(7)
    records = []
    for patient in "ABCDE":
        for _ in range(int(rng.integers(1, 5))):
            gt = [(y, x, y + 5, x + 5) for y, x in rng.integers(0, 11, size=(int(rng.integers(0, 3)), 2)).tolist()]
            dets = [(y, x, y + 5, x + 5) for y, x in rng.integers(0, 11, size=(int(rng.integers(0, 4)), 2)).tolist()]
            dets += [(y1 + 1, x1, y2 + 1, x2) for y1, x1, y2, x2 in gt[:1]]
            records.append(_record(patient, gt, dets, np.round(rng.uniform(0.1, 1.0, len(dets)), 1), size=16))
    records.append(_record("C", [(0, 0, 5, 5), (8, 8, 13, 13)], [(8, 8, 13, 13), (0, 0, 5, 5)], [0.6, 0.6],
                           size=16, crowd=[False, True]))
    return records


def test_precomputed_ap_equals_dataset_ap_exactly():
    for records in (_varied_records(), _two_patients(), _patient("A") + _patient("B")):
        units, n_units, _ = intervals.patient_units(records)
        ones = np.ones((1, n_units), np.int64)
        for kind in ("box", "mask"):
            ranked = intervals.rank_detections(records, units, n_units, kind)
            assert intervals.ap_samples(ranked, ones)[0] == ap.dataset_ap(records, kind)["ap"]


def _copies(records, weights_row, units):
    """The resample's records: each unit's records repeated as often as it was drawn, each copy a new patient."""
    out = []
    for unit, times in enumerate(weights_row):
        for copy in range(times):
            for record, record_unit in zip(records, units):
                if record_unit == unit:
                    out.append(dataclasses.replace(record, patient=f"{record.patient_key}#{copy}"))
    return out


def test_bootstrap_samples_equal_the_figures_of_the_pooled_resampled_records():
    records = _varied_records()
    units, n_units, _ = intervals.patient_units(records)
    weights = intervals.unit_weights(n_units, resamples=25, seed=11)
    lenient = intervals.per_unit_sum(confusion.image_level_cells(records, 0.5), units, n_units)
    strict = intervals.per_unit_sum(confusion.localised_cells(records, 0.5), units, n_units)
    per_patient = overlap.dice_summary(records, 0.5)["per_patient"]
    dice_values = np.array([np.nan if per_patient[k] is None else per_patient[k] for k in dict.fromkeys(
        r.patient_key for r in records)])
    samples = {"f1": intervals.f1_samples(lenient, weights), "f1_localised": intervals.f1_samples(strict, weights),
               "dice": intervals.mean_samples(dice_values, weights)}
    for kind in ("box", "mask"):
        samples[kind] = intervals.ap_samples(intervals.rank_detections(records, units, n_units, kind), weights)
    for b, row in enumerate(weights):
        pooled = _copies(records, row, units)
        want = {"f1": confusion.metrics_from_counts(**confusion.image_level_counts(pooled, 0.5))["f1"],
                "f1_localised": confusion.localised_counts(pooled, 0.5)["f1"],
                "dice": overlap.dice_summary(pooled, 0.5)["per_patient_mean"],
                "box": ap.dataset_ap(pooled, "box")["ap"], "mask": ap.dataset_ap(pooled, "mask")["ap"]}
        for name, value in want.items():
            got = samples[name][b]
            assert (np.isnan(got) if value is None else got == pytest.approx(value, abs=1e-12)), (b, name)


def test_bootstrap_figure_percentiles():
    entry = intervals.bootstrap_figure(0.5, np.concatenate([np.linspace(0, 1, 1001), [np.nan] * 3]))
    assert entry["low"] == pytest.approx(0.025) and entry["high"] == pytest.approx(0.975)
    assert entry["undefined_resamples"] == 3 and entry["value"] == 0.5
    assert intervals.bootstrap_figure(None, [0.1, 0.2])["low"] is None
    assert intervals.bootstrap_figure(0.3, [np.nan])["high"] is None


def test_images_without_patient_ids_are_their_own_units_and_the_report_says_so():
    from mrcnn_tf.evaluation import report

    records = [_record(None, [TOP_LEFT], [TOP_LEFT], [0.9]), _record(None, [BOTTOM_RIGHT])]
    figures = _figures(records)
    assert figures["intervals"]["bootstrap"]["unit"] == "image"
    assert figures["intervals"]["bootstrap"]["n_units"] == 2
    assert "images have no patient id" in report.to_markdown(figures)
    assert "images have no patient id" not in report.to_markdown(_figures(_two_patients()))


def test_ap_bootstrap_of_400_records_takes_seconds():
    # ~400 slices of 20 detections each, as a test split with the model's max_detections: the matching is done
    # once, and 1000 resamples only re-weight the ranked detections.
    rng = np.random.default_rng(0)
    records = []
    for index in range(400):
        y, x = rng.integers(0, 40, size=2)
        dets = np.column_stack([rng.integers(0, 40, (20, 2)), rng.integers(0, 40, (20, 2)) + 20]).astype(float)
        records.append(ImageRecord(index, f"{index}.png", f"P{index // 40}", 64, 64,
                                   np.float32([[y, x, y + 20, x + 20]]), None, np.zeros(1, bool),
                                   dets.astype(np.float32), rng.uniform(0.05, 1, 20).astype(np.float32), None))
    units, n_units, _ = intervals.patient_units(records)
    ranked = intervals.rank_detections(records, units, n_units, "box")
    started = time.perf_counter()
    samples = intervals.ap_samples(ranked, intervals.unit_weights(n_units))
    assert time.perf_counter() - started < 20  # a few seconds on a 2-core CPU; a Python loop per record is minutes
    assert np.isfinite(samples).all() and len(samples) == 1000
