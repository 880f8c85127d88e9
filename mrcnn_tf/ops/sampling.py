"""Balanced sampling of positives and negatives with a fixed count (static shapes).

Shape letters: ``N`` candidates, ``S`` samples.
"""
import tensorflow as tf


def _random_top(candidates, k, seed):
    """Indices ``[k]`` of ``k`` random candidates (candidates first) and whether each is a real candidate."""
    scores = tf.random.uniform(tf.shape(candidates), seed=seed)
    scores = tf.where(candidates, scores, -1.0)
    top_scores, top_indices = tf.math.top_k(scores, k=k)
    return top_indices, top_scores >= 0.0


def sample_balanced(positive, negative, num_samples, positive_fraction, seed=None):
    """Pick ``num_samples`` indices: at most ``positive_fraction`` of them positive, the rest negative.

    When there are too few positives, negatives fill the gap (as torchvision and detectron2); when there are too
    few candidates in all, the tail is padding, flagged invalid.

    Args:
      positive: ``[N]`` bool.
      negative: ``[N]`` bool, disjoint from ``positive``.
      num_samples: ``S``, a Python int ``<= N``.
      positive_fraction: Python float in ``(0, 1]``.
    Returns:
      indices: ``[S]`` int32 into the candidates, positives first.
      is_positive: ``[S]`` bool.
      valid: ``[S]`` bool, False for padding (its index is arbitrary).
    """
    max_positives = int(num_samples * positive_fraction)
    pos_indices, pos_valid = _random_top(positive, max_positives, seed)  # [P]
    neg_indices, neg_valid = _random_top(negative, num_samples, seed)  # [S]
    all_indices = tf.concat([pos_indices, neg_indices], axis=0)  # [P + S]
    all_valid = tf.concat([pos_valid, neg_valid], axis=0)
    all_positive = tf.concat([pos_valid, tf.zeros_like(neg_valid)], axis=0)
    # Keep the valid entries in order (positives, then negatives) and cut at S.
    order = tf.range(max_positives + num_samples, dtype=tf.float32)
    rank_key = tf.where(all_valid, -order, -order - 2.0 * (max_positives + num_samples))
    _, keep = tf.math.top_k(rank_key, k=num_samples)  # [S]
    indices = tf.gather(all_indices, keep)
    valid = tf.gather(all_valid, keep)
    is_positive = tf.gather(all_positive, keep) & valid
    return indices, is_positive, valid


def sampled_mask(indices, valid, size):
    """``[size]`` float32 with 1 at the valid sampled ``indices`` ``[S]`` and 0 elsewhere."""
    updates = tf.cast(valid, tf.float32)
    return tf.minimum(tf.scatter_nd(indices[:, None], updates, [size]), 1.0)
