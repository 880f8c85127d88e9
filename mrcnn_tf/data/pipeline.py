"""tf.data pipeline: decoded examples -> shuffled, batched dicts with static padded shapes.

Slices are decoded once, up front, so that a bad file stops the run before training starts (with its name),
and the decoded arrays are reused every epoch. Batches are dicts of ``images`` ``[B, S, S, 3]`` uint8,
``gt_boxes`` ``[B, G, 4]`` float32, ``gt_classes`` ``[B, G]`` int32 (-1 = padding), ``gt_masks`` ``[B, G, S, S]``
uint8.
"""
import keras
import numpy as np
import tensorflow as tf

from mrcnn_tf.errors import DataError

KEYS = {"image": "images", "gt_boxes": "gt_boxes", "gt_classes": "gt_classes", "gt_masks": "gt_masks"}


def decode_all(items, load_fn, verbose=True):
    """Decode every item with ``load_fn(item) -> example dict``; returns a dict of stacked arrays."""
    if not items:
        raise DataError("the dataset is empty: no image to train or evaluate on")
    progress = keras.utils.Progbar(len(items), unit_name="slice") if verbose else None
    examples = []
    for i, item in enumerate(items):
        examples.append(load_fn(item))
        if progress is not None and (i + 1) % 50 == 0 or i + 1 == len(items):
            progress and progress.update(i + 1)
    return {KEYS[key]: np.stack([e[key] for e in examples]) for key in KEYS}


def make_dataset(arrays, batch_size, training, seed=0):
    """A ``tf.data.Dataset`` over decoded ``arrays``; in training shuffled each epoch and repeated forever."""
    count = len(arrays["images"])
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    if training:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)
