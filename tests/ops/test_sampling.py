"""Tests for mrcnn_tf/ops/sampling.py: fixed sizes, the positive cap, negative fill, padding and the mask."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.ops.sampling import sample_balanced, sampled_mask


def _candidates(num, positive_at, negative_at):
    """Disjoint ``[num]`` bool masks from index lists; the rest is neither (ignored)."""
    positive = np.zeros(num, bool)
    negative = np.zeros(num, bool)
    positive[list(positive_at)] = True
    negative[list(negative_at)] = True
    assert not np.any(positive & negative)
    return positive, negative


def _sample(positive, negative, num_samples, positive_fraction, seed=None):
    indices, is_positive, valid = sample_balanced(positive, negative, num_samples, positive_fraction, seed=seed)
    return indices.numpy(), is_positive.numpy(), valid.numpy()


def _check_invariants(positive, negative, num_samples, positive_fraction, indices, is_positive, valid):
    """What every sample must satisfy, with the expected counts computed from the candidate counts."""
    assert indices.shape == is_positive.shape == valid.shape == (num_samples,)
    assert indices.dtype == np.int32 and is_positive.dtype == bool and valid.dtype == bool
    num_pos = min(int(positive.sum()), int(num_samples * positive_fraction))
    num_valid = min(num_samples, num_pos + int(negative.sum()))
    assert is_positive.sum() == num_pos
    assert valid.sum() == num_valid
    # Valid entries first (positives, then negatives); the tail is padding.
    np.testing.assert_array_equal(valid, np.arange(num_samples) < num_valid)
    np.testing.assert_array_equal(is_positive, np.arange(num_samples) < num_pos)
    assert np.all(valid[is_positive])
    assert np.all(positive[indices[is_positive]])
    valid_negative = valid & ~is_positive
    assert np.all(negative[indices[valid_negative]])
    assert len(np.unique(indices[valid])) == num_valid
    assert np.all((indices >= 0) & (indices < len(positive)))


def test_positives_capped_at_fraction():
    # 300 positives, 700 negatives, S = 256 at 1/4: 256 * 0.25 = 64 positives, 256 - 64 = 192 negatives.
    positive, negative = _candidates(1000, range(300), range(300, 1000))
    indices, is_positive, valid = _sample(positive, negative, 256, 0.25)
    assert is_positive.sum() == 64
    assert (valid & ~is_positive).sum() == 192
    _check_invariants(positive, negative, 256, 0.25, indices, is_positive, valid)


def test_negatives_fill_when_positives_are_few():
    # 10 positives, 500 negatives, S = 64 at 1/2: the cap is 32 but only 10 exist, so 64 - 10 = 54 negatives.
    positive, negative = _candidates(600, range(10), range(100, 600))
    indices, is_positive, valid = _sample(positive, negative, 64, 0.5)
    assert is_positive.sum() == 10
    assert valid.all()
    np.testing.assert_array_equal(np.sort(indices[is_positive]), np.arange(10))  # all 10 positives taken
    _check_invariants(positive, negative, 64, 0.5, indices, is_positive, valid)


def test_tail_is_invalid_when_candidates_are_fewer_than_samples():
    # 3 positives + 5 negatives = 8 candidates among 100 (the rest ignored), S = 32: 8 valid, 24 padding.
    positive, negative = _candidates(100, [7, 40, 99], [0, 1, 50, 60, 98])
    indices, is_positive, valid = _sample(positive, negative, 32, 0.5)
    np.testing.assert_array_equal(valid, [True] * 8 + [False] * 24)
    np.testing.assert_array_equal(is_positive, [True] * 3 + [False] * 29)
    np.testing.assert_array_equal(np.sort(indices[:3]), [7, 40, 99])
    np.testing.assert_array_equal(np.sort(indices[3:8]), [0, 1, 50, 60, 98])


def test_no_candidates_gives_all_padding():
    positive, negative = _candidates(20, [], [])
    indices, is_positive, valid = _sample(positive, negative, 8, 0.25)
    assert indices.shape == (8,)
    assert not valid.any() and not is_positive.any()


def test_only_positives_stops_at_the_cap():
    # No negatives to fill: 16 * 0.25 = 4 positives, the other 12 entries padding.
    positive, negative = _candidates(40, range(40), [])
    indices, is_positive, valid = _sample(positive, negative, 16, 0.25)
    np.testing.assert_array_equal(valid, [True] * 4 + [False] * 12)
    _check_invariants(positive, negative, 16, 0.25, indices, is_positive, valid)


def test_fraction_below_one_sample_allows_no_positive():
    # int(3 * 0.25) = int(0.75) = 0 positives; 3 negatives.
    positive, negative = _candidates(10, range(3), range(3, 10))
    indices, is_positive, valid = _sample(positive, negative, 3, 0.25)
    assert not is_positive.any() and valid.all()
    _check_invariants(positive, negative, 3, 0.25, indices, is_positive, valid)


@pytest.mark.parametrize("seed", range(6))
def test_invariants_on_random_candidates(seed):
    rng = np.random.default_rng(seed)
    num = int(rng.integers(20, 300))
    label = rng.choice(3, size=num, p=rng.dirichlet([1, 1, 1]))  # 0 ignored, 1 positive, 2 negative
    positive, negative = label == 1, label == 2
    num_samples = int(rng.integers(1, num + 1))
    fraction = float(rng.choice([0.25, 0.5, 1.0]))
    _check_invariants(positive, negative, num_samples, fraction, *_sample(positive, negative, num_samples, fraction))


def test_sizes_are_static_whatever_the_candidate_count():
    sample = tf.function(
        lambda positive, negative: sample_balanced(positive, negative, 16, 0.25),
        input_signature=[tf.TensorSpec([None], tf.bool)] * 2,
        autograph=False,
    )
    outputs = sample.get_concrete_function().structured_outputs
    assert [output.shape.as_list() for output in outputs] == [[16], [16], [16]]
    for num, num_pos, num_neg in [(16, 0, 0), (16, 2, 3), (64, 40, 0), (64, 0, 40), (200, 30, 170)]:
        positive, negative = _candidates(num, range(num_pos), range(num_pos, num_pos + num_neg))
        indices, is_positive, valid = (output.numpy() for output in sample(positive, negative))
        _check_invariants(positive, negative, 16, 0.25, indices, is_positive, valid)


def test_sampling_is_random():
    # 100 positives, cap 4: twenty draws that always returned the same 4 would not be a random sample.
    positive, negative = _candidates(200, range(100), range(100, 200))
    seen = set()
    for _ in range(20):
        indices, is_positive, _ = _sample(positive, negative, 16, 0.25)
        seen.update(indices[is_positive].tolist())
    assert len(seen) > 4


def test_sampled_mask_known_case():
    # Valid indices 2 and 5; index 2 again and index 0 as padding must not add anything.
    mask = sampled_mask(tf.constant([2, 5, 2, 0]), tf.constant([True, True, False, False]), 6).numpy()
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [0, 0, 1, 0, 0, 1])


def test_sampled_mask_sets_exactly_the_valid_sampled_indices():
    positive, negative = _candidates(100, [7, 40, 99], [0, 1, 50, 60, 98])
    indices, _, valid = sample_balanced(positive, negative, 32, 0.5)
    mask = sampled_mask(indices, valid, 100).numpy()
    np.testing.assert_array_equal(np.flatnonzero(mask), [0, 1, 7, 40, 50, 60, 98, 99])
    assert set(np.unique(mask)) == {0.0, 1.0}
