"""Tests for mrcnn_tf/data/pipeline.py: stacking decoded examples and the tf.data pipeline's static shapes.

Examples are made in memory with ``make_example``; example ``i`` has every image pixel equal to ``i`` so that a
batch tells which examples it holds. Shape letters: ``B`` batch, ``S`` image size, ``G`` max instances.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import ellipse_masks, tiny_config
from mrcnn_tf.data import pipeline
from mrcnn_tf.data.instances import make_example
from mrcnn_tf.errors import DataError

CONFIG = tiny_config()
S, G = CONFIG.image_size, CONFIG.max_instances  # 64, 4


def _load(index):
    """Example ``index``: image filled with ``index``, ``index % 3`` ellipses (so some are tumour-free)."""
    ellipses = [(12 + 20 * k, 16 + 10 * k, 5, 7) for k in range(index % 3)]
    image = np.full((S, S, 3), index, np.uint8)
    masks = ellipse_masks(S, ellipses)
    return make_example(image, masks, np.ones(len(masks), np.int32), S, G, f"slice_{index}.tif")


def _arrays(count):
    return pipeline.decode_all(list(range(count)), _load, verbose=False)[1]


def _ids(batch):
    """The example indices of a batch, read back from the image pixels."""
    return batch["images"].numpy()[:, 0, 0, 0].tolist()


def test_decode_all_stacks_every_example_in_order():
    arrays = _arrays(5)
    assert set(arrays) == {"images", "gt_boxes", "gt_classes", "gt_masks"}
    assert arrays["images"].shape == (5, S, S, 3) and arrays["images"].dtype == np.uint8
    assert arrays["gt_boxes"].shape == (5, G, 4) and arrays["gt_boxes"].dtype == np.float32
    assert arrays["gt_classes"].shape == (5, G) and arrays["gt_classes"].dtype == np.int32
    assert arrays["gt_masks"].shape == (5, G, S, S) and arrays["gt_masks"].dtype == np.uint8
    assert arrays["images"][:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    # index % 3 tumours: 0, 1, 2, 0, 1
    assert (arrays["gt_classes"] == 1).sum(axis=1).tolist() == [0, 1, 2, 0, 1]
    for i in range(5):
        expected = _load(i)
        np.testing.assert_array_equal(arrays["gt_boxes"][i], expected["gt_boxes"])
        np.testing.assert_array_equal(arrays["gt_masks"][i], expected["gt_masks"])


def test_decode_all_with_a_progress_bar(capsys):
    _, arrays = pipeline.decode_all(list(range(3)), _load, verbose=True)
    assert arrays["images"].shape == (3, S, S, 3)
    assert "3/3" in capsys.readouterr().out


def test_decode_all_of_no_items_raises():
    with pytest.raises(DataError, match="empty"):
        pipeline.decode_all([], _load, verbose=False)


def test_decode_all_lets_a_data_error_through():
    def load(index):
        if index == 2:
            raise DataError("slice_2.tif: empty or corrupt image")
        return _load(index)

    with pytest.raises(DataError, match="slice_2.tif"):
        pipeline.decode_all([0, 1, 2, 3], load, verbose=False)


def test_training_dataset_has_static_shapes():
    dataset = pipeline.make_dataset(_arrays(5), batch_size=2, training=True)
    spec = dataset.element_spec
    expected = {
        "images": ([2, S, S, 3], tf.uint8),
        "gt_boxes": ([2, G, 4], tf.float32),
        "gt_classes": ([2, G], tf.int32),
        "gt_masks": ([2, G, S, S], tf.uint8),
    }
    assert set(spec) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert spec[key].shape.is_fully_defined(), key
        assert spec[key].shape.as_list() == shape, key
        assert spec[key].dtype == dtype, key
    for batch in dataset.take(2):
        for key, (shape, dtype) in expected.items():
            assert batch[key].shape.as_list() == shape and batch[key].dtype == dtype


def test_training_dataset_repeats_and_shuffles_whole_epochs():
    count, batch_size, batches = 3, 2, 6  # 12 examples = exactly 4 epochs of 3
    dataset = pipeline.make_dataset(_arrays(count), batch_size, training=True, seed=1)
    seen = [i for batch in dataset.take(batches) for i in _ids(batch)]
    assert len(seen) == batches * batch_size
    epochs = [sorted(seen[k : k + count]) for k in range(0, len(seen), count)]
    assert epochs == [[0, 1, 2]] * 4  # every epoch a permutation of all the examples
    assert seen != [0, 1, 2] * 4  # shuffled (seeded, so this is deterministic)


def test_training_batches_keep_examples_whole():
    arrays = _arrays(4)
    dataset = pipeline.make_dataset(arrays, batch_size=2, training=True, seed=3)
    for batch in dataset.take(4):
        for row, index in enumerate(_ids(batch)):
            np.testing.assert_array_equal(batch["gt_boxes"][row].numpy(), arrays["gt_boxes"][index])
            np.testing.assert_array_equal(batch["gt_classes"][row].numpy(), arrays["gt_classes"][index])
            np.testing.assert_array_equal(batch["gt_masks"][row].numpy(), arrays["gt_masks"][index])


def test_pass_indices_repeat_the_examples_without_an_instance():
    gt_classes = _arrays(6)["gt_classes"]  # examples 0 and 3 have no ellipse
    assert pipeline.pass_indices(gt_classes).tolist() == [0, 1, 2, 3, 4, 5]
    assert sorted(pipeline.pass_indices(gt_classes, empty_repeat=3).tolist()) == [0, 0, 0, 1, 2, 3, 3, 3, 4, 5]
    with pytest.raises(ValueError, match="at least 1"):
        pipeline.pass_indices(gt_classes, empty_repeat=0)


@pytest.mark.parametrize("empty_repeat", [1, 2])
def test_training_stream_shows_each_pass_in_a_fresh_order(empty_repeat):
    arrays = _arrays(6)
    dataset = pipeline.make_training_dataset(arrays, batch_size=2, seed=5, augment=False, empty_repeat=empty_repeat)
    per_pass = 6 + 2 * (empty_repeat - 1)
    seen = [i for batch in dataset.take(per_pass) for i in _ids(batch)]  # two passes
    first, second = seen[:per_pass], seen[per_pass:]
    expected = sorted([0, 1, 2, 3, 4, 5] + [0, 3] * (empty_repeat - 1))
    assert sorted(first) == sorted(second) == expected
    assert first != second


def test_without_repeats_the_stream_is_the_one_earlier_runs_trained_on():
    # A run resumed from a folder written before empty_slice_repeat existed must see the slices it would have.
    earlier = [int(i) for p in range(3) for i in tf.random.experimental.stateless_shuffle(
        tf.range(7, dtype=tf.int64), seed=tf.constant([5, p], tf.int64))]  # the earlier code's permutations
    order = pipeline.example_order(pipeline.pass_indices(np.full([7, 2], -1), empty_repeat=1), 5)
    stream = [int(i) for _, i in order.take(21)]
    assert stream == earlier


def test_training_stream_resumes_at_the_step_it_stopped():
    arrays = _arrays(6)
    whole = [i for batch in pipeline.make_training_dataset(arrays, 2, seed=5, augment=False, empty_repeat=2)
             .take(7) for i in _ids(batch)]
    resumed = [i for batch in pipeline.make_training_dataset(arrays, 2, seed=5, start_step=3, augment=False,
                                                             empty_repeat=2).take(4) for i in _ids(batch)]
    assert resumed == whole[6:]


def test_evaluation_dataset_yields_every_example_once_in_order():
    dataset = pipeline.make_dataset(_arrays(5), batch_size=2, training=False)
    batches = list(dataset)
    assert [len(b["images"]) for b in batches] == [2, 2, 1]  # the last, partial batch is kept
    assert [i for b in batches for i in _ids(b)] == [0, 1, 2, 3, 4]
    assert batches[-1]["gt_masks"].shape.as_list() == [1, G, S, S]
    assert list(dataset.as_numpy_iterator())[0]["images"].shape == (2, S, S, 3)  # and it can be iterated again


def test_skip_bad_leaves_bad_items_out_and_says_so(caplog):
    def load(index):
        if index in (1, 3):
            raise DataError(f"file{index}.tif: corrupt")
        return _load(index)

    kept, arrays = pipeline.decode_all([0, 1, 2, 3, 4], load, verbose=False, skip_bad=True)
    assert kept == [0, 2, 4] and len(arrays["images"]) == 3
    assert "file1.tif" in caplog.text and "skipped 2 bad file(s) of 5" in caplog.text
    with pytest.raises(DataError, match="no readable image"):
        pipeline.decode_all([1, 3], load, verbose=False, skip_bad=True)


def test_training_on_crops_gives_static_crop_shapes_and_its_own_windows():
    arrays = _arrays(3)
    dataset = pipeline.make_training_dataset(arrays, 1, seed=0, augment=False, crop_size=32)
    spec = dataset.element_spec
    assert spec["images"].shape.as_list() == [1, 32, 32, 3] and spec["gt_masks"].shape.as_list() == [1, G, 32, 32]
    first = [batch["images"].numpy() for batch in dataset.take(3)]
    again = [batch["images"].numpy() for batch in pipeline.make_training_dataset(
        arrays, 1, seed=0, augment=False, crop_size=32).take(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # a resumed run cuts the same windows
    whole = [batch["images"].numpy() for batch in pipeline.make_training_dataset(
        arrays, 1, seed=0, augment=False).take(3)]
    assert all(w.shape == (1, S, S, 3) for w in whole)
