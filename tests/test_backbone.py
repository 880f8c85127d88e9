"""ResNet50 builder: Keras-compatible layer names, weight loading from a local file, freezing, norms (made by a
``LayerFactory``: tests/layers/test_factory.py)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf import backbone
from mrcnn_tf.config import BackboneConfig
from mrcnn_tf.errors import ConfigError
from mrcnn_tf.layers.factory import LayerFactory

SIZE = 64
FROZEN_BN = LayerFactory("frozen_bn")
GROUP_NORM = LayerFactory("group_norm", groups=8)


@pytest.fixture(scope="module")
def reference_weights(tmp_path_factory):
    """A weights file of keras.applications.ResNet50 with random (non-default) weights, as a user would have."""
    keras.utils.set_random_seed(3)
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    for layer in reference.layers:  # make BatchNorm statistics non-trivial so a missed copy shows
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, mean + 0.2, var * 2.0])
    path = str(tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5")
    reference.save_weights(path)
    return path, reference


def test_frozen_bn_backbone_reproduces_keras_resnet50(reference_weights):
    path, reference = reference_weights
    model = backbone.build_resnet50(SIZE, FROZEN_BN)
    copied = backbone.load_pretrained(model, path, SIZE)
    assert "conv1_conv" in copied and "conv5_block3_3_bn" in copied
    x = tf.random.uniform([1, SIZE, SIZE, 3], -100, 100, seed=1)
    c5_reference = keras.Model(reference.input, reference.get_layer("conv5_block3_out").output)(x)
    c2, c3, c4, c5 = model(x, training=True)  # frozen BN ignores training=True
    np.testing.assert_allclose(c5.numpy(), c5_reference.numpy(), rtol=1e-4, atol=1e-4)
    assert [c.shape[1] for c in (c2, c3, c4, c5)] == [SIZE // 4, SIZE // 8, SIZE // 16, SIZE // 32]


def test_group_norm_backbone_loads_convolutions_only(reference_weights):
    path, reference = reference_weights
    model = backbone.build_resnet50(SIZE, GROUP_NORM)
    copied = backbone.load_pretrained(model, path, SIZE)
    assert not any(name.endswith("_bn") or name.endswith("_gn") for name in copied)
    np.testing.assert_array_equal(
        model.get_layer("conv2_block1_1_conv").get_weights()[0],
        reference.get_layer("conv2_block1_1_conv").get_weights()[0],
    )
    assert isinstance(model.get_layer("conv2_block1_1_gn"), keras.layers.GroupNormalization)


def test_missing_or_wrong_weights_file_is_a_clear_error(tmp_path):
    model = backbone.build_resnet50(SIZE, FROZEN_BN)
    with pytest.raises(ConfigError, match="not found"):
        backbone.load_pretrained(model, str(tmp_path / "nope.weights.h5"), SIZE)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    wrong = str(tmp_path / "other.weights.h5")
    other.save_weights(wrong)
    with pytest.raises(ConfigError, match="other.weights.h5"):
        backbone.load_pretrained(model, wrong, SIZE)


def test_freeze_stages_freezes_stem_and_conv2_only():
    model = backbone.build_resnet50(SIZE, GROUP_NORM)
    backbone.freeze_stages(model, 2)
    assert not model.get_layer("conv1_conv").trainable
    assert not model.get_layer("conv2_block3_3_conv").trainable
    assert model.get_layer("conv3_block1_1_conv").trainable


def test_frozen_bn_has_no_trainable_statistics():
    model = backbone.build_resnet50(SIZE)  # the default: frozen BatchNorm, for pre-trained weights
    bn = model.get_layer("conv1_bn")
    assert not bn.trainable and not bn.trainable_weights


def test_the_factory_makes_every_convolution_and_norm():
    model = backbone.build_resnet50(SIZE, LayerFactory("group_norm", groups=8, xla_conv=True, xla_norm=True))
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    norms = [layer for layer in model.layers if layer.name.endswith("_gn")]
    assert len(convs) == len(norms) == 53  # the stem, 16 bottlenecks of 3 and 4 shortcut convolutions
    assert all(conv.xla for conv in convs) and all(norm.xla and norm.groups == 8 for norm in norms)


def test_default_norm_follows_the_weights():
    assert BackboneConfig(weights="none").resolved_norm == "group_norm"
    assert BackboneConfig(weights="imagenet").resolved_norm == "frozen_bn"
    assert BackboneConfig(weights="x.h5", norm="group_norm").resolved_norm == "group_norm"
