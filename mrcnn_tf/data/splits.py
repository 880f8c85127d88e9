"""Patient-level train / validation / test splits, stratified by the share of tumour-free slices.

No patient ever appears in two splits. Patients are ordered by their share of tumour-free slices (random order
among equal shares, from the seed) and dealt out one by one to the split furthest below its target count, so each
run of about ten consecutive patients goes 7 / 2 / 1 and every split gets a similar mix of tumour-free slices.
The split is written once into the run folder (``splits.json``) and read back by ``evaluate.py``.
"""
import json
import logging
import os

import numpy as np

from mrcnn_tf.errors import DataError

SPLITS = ("train", "val", "test")
SPLITS_FILE = "splits.json"
log = logging.getLogger(__name__)


def split_patients(tumour_free_share, ratios=(0.7, 0.2, 0.1), seed=0):
    """Assign patients to splits.

    Args:
      tumour_free_share: dict patient id -> share of its slices without tumour (0..1).
      ratios: train, val, test fractions of the patients (normalised to sum 1).
    Returns:
      dict split name -> sorted list of patient ids.
    """
    ratios = np.asarray(ratios, np.float64) / np.sum(ratios)
    patients = sorted(tumour_free_share)
    np.random.default_rng(seed).shuffle(patients)
    patients.sort(key=lambda p: tumour_free_share[p])  # stable: the shuffle breaks ties
    counts = np.zeros(len(SPLITS))
    assignment = {name: [] for name in SPLITS}
    for dealt, patient in enumerate(patients, start=1):
        split = int(np.argmax(ratios * dealt - counts))
        counts[split] += 1
        assignment[SPLITS[split]].append(patient)
    return {name: sorted(members) for name, members in assignment.items()}


def make_splits(items, has_tumour, ratios=(0.7, 0.2, 0.1), seed=0):
    """Splits of dataset ``items`` (objects with a ``patient`` attribute; None = no patient id).

    ``has_tumour`` is a list of bools aligned with ``items``. Items without a patient id are split one by one,
    with a warning, since slices of one patient may then land in two splits.
    Returns the ``splits.json`` dict: ``{"ratios", "seed", "by": "patient"|"image", "train": [...], ...}``.
    """
    by_image = any(item.patient is None for item in items)
    if by_image:
        log.warning("the data has no patient ids: splitting by image, so one patient's slices may share splits")
    keys = [item_key(item, by_image) for item in items]
    slices, free = {}, {}
    for key, tumour in zip(keys, has_tumour):
        slices[key] = slices.get(key, 0) + 1
        free[key] = free.get(key, 0) + (not tumour)
    groups = split_patients({k: free[k] / slices[k] for k in slices}, ratios, seed)
    return {"ratios": list(ratios), "seed": seed, "by": "image" if by_image else "patient", **groups}


def item_key(item, by_image):
    """What a split is made of: the patient id, or the image path when splitting by image."""
    return item.image_path if by_image else item.patient


def select(items, splits, name):
    """The items of split ``name`` (``"all"`` for every item); an empty split raises DataError."""
    if name == "all":
        return list(items)
    members = set(splits[name])
    by_image = splits.get("by") == "image"
    chosen = [item for item in items if item_key(item, by_image) in members]
    if not chosen:
        raise DataError(f"the {name} split is empty (its members: {sorted(members)[:5]}...)")
    return chosen


def write_splits(splits, path):
    """Write ``splits.json`` whole or not at all (beside it, then renamed)."""
    partial = os.fspath(path) + ".tmp"
    with open(partial, "w") as f:
        json.dump(splits, f, indent=1)
    os.replace(partial, path)


def read_splits(path):
    """Read ``splits.json``; a malformed file raises DataError naming it."""
    try:
        with open(path) as f:
            splits = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read the splits file: {error}") from error
    missing = [name for name in SPLITS if name not in splits]
    if missing:
        raise DataError(f"{path}: splits file lacks {missing}")
    return splits


def spread_indices(count, total):
    """``count`` indices spread evenly over ``range(total)`` (all of them when ``total <= count``)."""
    if total <= count:
        return list(range(total))
    return sorted(set(np.linspace(0, total - 1, count).round().astype(int).tolist()))
