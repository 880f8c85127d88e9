"""Patient-level splits: ratios, stratification, no patient in two splits, file round trip; indices spread over a
split."""
import collections
import json

import numpy as np
import pytest
from conftest import require_shared_lgg

from mrcnn_tf.data import lgg, splits
from mrcnn_tf.data.items import Item
from mrcnn_tf.errors import DataError


def test_split_patients_deals_70_20_10_and_is_reproducible():
    shares = {f"p{i:03d}": (i % 7) / 7 for i in range(100)}
    first = splits.split_patients(shares, seed=3)
    assert [len(first[name]) for name in splits.SPLITS] == [70, 20, 10]
    assert first == splits.split_patients(shares, seed=3)
    assert first != splits.split_patients(shares, seed=4)
    assert set().union(*first.values()) == set(shares)


def test_stratification_balances_the_tumour_free_share():
    # Half the patients have no tumour-free slice, half only tumour-free ones: each split gets about half of each.
    shares = {f"p{i:02d}": float(i % 2) for i in range(40)}
    result = splits.split_patients(shares, ratios=(0.5, 0.25, 0.25), seed=0)
    for name in splits.SPLITS:
        members = result[name]
        assert abs(np.mean([shares[p] for p in members]) - 0.5) <= 0.1, (name, members)


def _slices(patients_and_tumour):
    return [Item(f"/d/{p}/{p}_{i}.tif", f"/d/{p}/{p}_{i}_mask.tif", p) for i, (p, _) in
            enumerate(patients_and_tumour)]


def test_make_splits_by_image_when_there_is_no_patient_id(caplog):
    items = [Item(f"/d/{i}.tif", f"/d/{i}_mask.tif", None) for i in range(10)]
    result = splits.make_splits(items, [i % 2 == 0 for i in range(10)])
    assert result["by"] == "image" and "no patient ids" in caplog.text
    assert len(splits.select(items, result, "train")) == 7


def test_select_and_file_round_trip(tmp_path):
    pairs = [(f"P{i % 10}", i % 3 == 0) for i in range(50)]
    items = _slices(pairs)
    result = splits.make_splits(items, [t for _, t in pairs])
    path = tmp_path / splits.SPLITS_FILE
    splits.write_splits(result, path)
    again = splits.read_splits(path)
    chosen = {name: splits.select(items, again, name) for name in splits.SPLITS}
    assert sum(len(v) for v in chosen.values()) == len(items)
    assert splits.select(items, again, "all") == items
    with pytest.raises(DataError, match="empty"):
        splits.select(items, {**again, "test": ["nobody"]}, "test")


def test_malformed_splits_file_is_a_data_error(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": []}))
    with pytest.raises(DataError, match="splits.json"):
        splits.read_splits(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="splits.json"):
        splits.read_splits(path)


def test_no_patient_of_the_shared_lgg_data_is_in_two_splits():
    root = require_shared_lgg()
    items = lgg.list_slices(root)
    tumour = {row.split(",")[1]: row.split(",")[3] == "1" for row in open(f"{root}/slices.csv").read().split()[1:]}
    has_tumour = [tumour[item.image_path[len(root) + 1:]] for item in items]
    result = splits.make_splits(items, has_tumour)
    members = [set(result[name]) for name in splits.SPLITS]
    assert not (members[0] & members[1] or members[0] & members[2] or members[1] & members[2])
    assert [len(m) for m in members] == [70, 20, 10]
    chosen = {name: splits.select(items, result, name) for name in splits.SPLITS}
    for name, part in chosen.items():
        patients = collections.Counter(item.patient for item in part)
        assert set(patients) == members[splits.SPLITS.index(name)]
    free = {name: np.mean([not has_tumour[items.index(i)] for i in part]) for name, part in chosen.items()}
    assert max(free.values()) - min(free.values()) < 0.1, free


@pytest.mark.parametrize("count, total, expected", [
    (4, 10, [0, 3, 6, 9]),  # both ends, evenly between
    (3, 5, [0, 2, 4]),
    (1, 7, [0]),
    (8, 5, [0, 1, 2, 3, 4]),  # fewer than asked: all of them
    (5, 5, [0, 1, 2, 3, 4]),
    (4, 0, []),
])
def test_spread_indices_spreads_evenly_and_keeps_the_ends(count, total, expected):
    assert splits.spread_indices(count, total) == expected


def test_spread_indices_gives_distinct_sorted_indices_within_range():
    for total in range(1, 60):
        for count in range(1, 12):
            indices = splits.spread_indices(count, total)
            assert indices == sorted(set(indices)) and all(0 <= i < total for i in indices)
            assert len(indices) == min(count, total)
