"""tf.data pipeline: decoded examples -> shuffled, batched dicts with static padded shapes.

Slices are decoded once, up front, so that a bad file stops the run before training starts (with its name),
and the decoded arrays are reused every epoch. Batches are dicts of ``images`` ``[B, S, S, 3]`` uint8,
``gt_boxes`` ``[B, G, 4]`` float32, ``gt_classes`` ``[B, G]`` int32 (-1 = padding), ``gt_masks`` ``[B, G, S, S]``
uint8.
"""
import concurrent.futures
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from mrcnn_tf.errors import DataError

log = logging.getLogger(__name__)
# The crop's window is drawn from the example's seed folded with this, apart from augmentation's draws.
CROP_SEED_SLOT = 1000
KEYS = {"image": "images", "gt_boxes": "gt_boxes", "gt_classes": "gt_classes", "gt_masks": "gt_masks"}


def decode_all(items, load_fn, verbose=True, skip_bad=False, workers=None):
    """Decode every item with ``load_fn(item) -> example dict``, in parallel threads (OpenCV releases the GIL).

    A bad file raises its DataError; with ``skip_bad`` it is logged and left out, and the count is reported.
    Returns the items kept and a dict of their stacked arrays.
    """
    if not items:
        raise DataError("the dataset is empty: no image to train or evaluate on")
    progress = keras.utils.Progbar(len(items), unit_name="slice") if verbose else None
    kept, examples, bad = [], [], 0
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        for done, (item, result) in enumerate(zip(items, pool.map(_guarded(load_fn), items)), start=1):
            if isinstance(result, DataError):
                if not skip_bad:
                    raise result
                bad += 1
                log.warning("skipped: %s", result)
            else:
                kept.append(item)
                examples.append(result)
            if progress is not None and (done % 50 == 0 or done == len(items)):
                progress.update(done)
    if bad:
        log.warning("skipped %d bad file(s) of %d", bad, len(items))
    if not examples:
        raise DataError(f"no readable image among the {len(items)} items")
    return kept, {KEYS[key]: np.stack([e[key] for e in examples]) for key in KEYS}


def _guarded(load_fn):
    def load(item):
        try:
            return load_fn(item)
        except DataError as error:
            return error

    return load


def make_dataset(arrays, batch_size, training, seed=0):
    """A ``tf.data.Dataset`` over decoded ``arrays``; in training shuffled each epoch and repeated forever."""
    count = len(arrays["images"])
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    if training:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)


def has_instances(gt_classes):
    """Whether each example holds an instance: ``gt_classes`` ``[examples, G]`` (-1 = padding) -> bool
    ``[examples]``."""
    return (np.asarray(gt_classes) >= 0).any(axis=1)


def pass_indices(gt_classes, empty_repeat=1):
    """The example indices one pass over the training data draws: every example once, and each example without
    an instance (its row of ``gt_classes``, ``[examples, G]``, all -1) ``empty_repeat - 1`` more times, so that
    a model sees more tumour-free slices, where its false positives are. Returns the indices (int64), repeats
    last."""
    if empty_repeat < 1:
        raise ValueError(f"empty_repeat must be at least 1, got {empty_repeat}")
    empty = np.flatnonzero(~has_instances(gt_classes))
    return np.concatenate([np.arange(len(gt_classes))] + [empty] * (empty_repeat - 1)).astype(np.int64)


def example_order(indices, seed):
    """An endless stream of example indices, a fresh permutation of ``indices`` (:func:`pass_indices`) per pass
    over the data, as ``(position, index)``.

    The stream is a pure function of ``indices`` and ``seed``, so a resumed run that skips the positions already
    trained on sees exactly the examples it would have seen.
    """
    indices = tf.constant(indices, tf.int64)  # [P]
    count = tf.shape(indices, out_type=tf.int64)[0]
    passes = tf.data.Dataset.range(2**62)
    order = passes.flat_map(lambda p: tf.data.Dataset.from_tensor_slices(tf.gather(
        indices, tf.random.experimental.stateless_shuffle(tf.range(count), seed=tf.stack([seed, p])))))
    return order.enumerate()


def make_training_dataset(arrays, batch_size, seed=0, start_step=0, augment=True, empty_repeat=1, crop_size=0):
    """Training batches: the :func:`example_order` stream (tumour-free slices ``empty_repeat`` times a pass) from
    step ``start_step`` on, each example augmented with a seed of its own position (``data.augment``), then cut
    to a random ``crop_size`` window around its content when ``crop_size`` (``augment.crop_example``; 0: whole
    slices), batched with static shapes and prefetched."""
    from mrcnn_tf.data import augment as augment_lib

    specs = {KEYS[k]: tf.TensorSpec(arrays[KEYS[k]].shape[1:], tf.as_dtype(arrays[KEYS[k]].dtype)) for k in KEYS}
    names = list(specs)

    def lookup(index):
        return tuple(arrays[name][index] for name in names)

    def load(position, index):
        values = tf.numpy_function(lookup, [index], [specs[n].dtype for n in names], stateful=False)
        example = {n: tf.ensure_shape(v, specs[n].shape) for n, v in zip(names, values)}
        example_seed = tf.stack([tf.cast(seed, tf.int64), position])  # [2]
        if augment:
            example = augment_lib.augment_example(example, example_seed)
        if crop_size:  # a draw of its own, apart from augmentation's (which moves the content it centres on)
            example = augment_lib.crop_example(example, crop_size, tf.random.experimental.stateless_fold_in(
                example_seed, CROP_SEED_SLOT))
        return example

    order = example_order(pass_indices(arrays["gt_classes"], empty_repeat), seed)
    dataset = order.skip(start_step * batch_size)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

