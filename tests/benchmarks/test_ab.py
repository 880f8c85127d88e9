"""benchmarks/ab.py: the changes' "befores" compute the same values the way the code did before."""
import keras
import numpy as np
import tensorflow as tf
from conftest import load_benchmark, tiny_config

from mrcnn_tf.layers import group_norm as group_norm_layer
from mrcnn_tf.layers.group_norm import GroupNormalization
from mrcnn_tf.model import build_model


def _op_types(fn, images):
    graph = fn.get_concrete_function(images).graph
    types = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:  # the ops inside nested tf.functions too
        types |= {node.op for node in function.node_def}
    return types


def test_pool_by_gather_gives_the_same_detections_without_crop_and_resize():
    ab = load_benchmark("ab")
    config = tiny_config(inference={"score_threshold": 0.0})
    images = tf.constant(np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3)), tf.uint8)
    crop, gather = build_model(config), build_model(config)
    crop(images)
    gather(images)
    gather.set_weights(crop.get_weights())
    ab.pool_by_gather(gather)
    infer_crop = tf.function(lambda x: crop(x, training=False))
    infer_gather = tf.function(lambda x: gather(x, training=False))
    assert "CropAndResize" in _op_types(infer_crop, images)
    assert "CropAndResize" not in _op_types(infer_gather, images)
    want, got = infer_crop(images), infer_gather(images)
    assert int(want["num_detections"][0]) > 0
    for key in ("boxes", "scores", "mask_probs"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-4)


def test_rpn_heads_by_conv_gives_the_same_outputs():
    ab = load_benchmark("ab")
    config = tiny_config()
    model = build_model(config)
    features = model.extract_features(tf.constant(np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3)),
                                                  tf.uint8))
    layer = model.rpn_head.objectness
    calls, call = [], layer.call
    layer.call = lambda *args, **kwargs: calls.append(1) or call(*args, **kwargs)
    want = model.rpn_head(features)
    assert len(calls) == 1  # once, on all levels' positions
    ab.rpn_heads_by_conv(model)
    got = model.rpn_head(features)
    assert len(calls) == 1 + len(features)  # then level by level
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_group_norm_grouped_5d_gives_the_same_values_grouped_5d(monkeypatch):
    ab = load_benchmark("ab")
    inputs = keras.Input((6, 5, 16))
    x = GroupNormalization(xla=True, groups=4, name="backbone_gn")(inputs)  # as the backbone's and FPN's
    model = keras.Model(inputs, GroupNormalization(groups=4, name="mask_head_gn")(x))  # as the mask head's
    rng = np.random.default_rng(2)
    for layer in model.layers[1:]:
        layer.gamma.assign(rng.normal(1.0, 0.3, 16))
        layer.beta.assign(rng.normal(0.0, 0.3, 16))
    x = tf.constant(rng.normal(3.0, 2.0, (2, 6, 5, 16)), tf.float32)

    def value_and_gradients(training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=training)
            loss = tf.reduce_sum(y * tf.sin(y))
        return [y] + tape.gradient(loss, [x] + model.trainable_variables)

    want = [value_and_gradients(training) for training in (True, False)]
    calls = []
    five_d = ab.grouped_5d_group_norm
    monkeypatch.setattr(ab, "grouped_5d_group_norm_xla", lambda *args: calls.append(5) or five_d(*args))
    monkeypatch.setattr(group_norm_layer, "group_norm_xla", lambda *args: calls.append(4))
    ab.group_norm_grouped_5d(model)
    got = [value_and_gradients(training) for training in (True, False)]
    assert calls == [5]  # the XLA layer's training call, grouped as [B, H, W, groups, C / groups]
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
