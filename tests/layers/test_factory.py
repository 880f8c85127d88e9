"""mrcnn_tf/layers/factory.py: which convolution and norm layers a LayerFactory makes, under which names, with which
XLA switches."""
import keras
import numpy as np
import pytest

from mrcnn_tf.errors import ConfigError
from mrcnn_tf.layers.conv import Conv2D
from mrcnn_tf.layers.factory import BN_EPSILON, GN_EPSILON, LayerFactory
from mrcnn_tf.layers.group_norm import GroupNormalization


def test_frozen_bn_is_a_non_trainable_batch_norm_and_no_head_norm():
    layers = LayerFactory()  # the default: frozen BatchNorm, for pre-trained weights
    norm = layers.norm_layer("conv1")
    assert isinstance(norm, keras.layers.BatchNormalization) and not isinstance(norm, GroupNormalization)
    assert norm.name == "conv1_bn" and norm.epsilon == BN_EPSILON == 1.001e-5  # keras.applications' names, value
    assert not norm.trainable
    assert layers.head_norm("lateral_c2") is None  # FPN and heads without norm, as the original FPN


def test_frozen_bn_runs_in_inference_mode_when_training():
    norm = LayerFactory().norm_layer("conv1")
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 4, 4, 8)).astype(np.float32)
    # Fresh statistics (mean 0, variance 1): a BatchNorm in inference mode passes x through (up to epsilon).
    np.testing.assert_allclose(norm(x, training=True), x / np.sqrt(1 + BN_EPSILON), rtol=1e-5)
    assert not norm.trainable_weights


def test_group_norm_for_backbone_and_heads():
    layers = LayerFactory("group_norm", groups=4)
    for name, make in (("conv1", layers.norm_layer), ("output_p2", layers.head_norm)):
        norm = make(name)
        assert isinstance(norm, GroupNormalization) and norm.name == name + "_gn"
        assert (norm.groups, norm.epsilon, norm.xla) == (4, GN_EPSILON, False)


def test_conv_passes_keras_arguments_and_the_xla_switch():
    conv = LayerFactory(xla_conv=True).conv(8, 3, "conv2_block1_2_conv", strides=2, padding="same",
                                            activation="relu")
    assert isinstance(conv, Conv2D) and conv.xla and conv.name == "conv2_block1_2_conv"
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding) == (8, (3, 3), (2, 2), "same")
    assert conv.activation is keras.activations.relu
    assert not LayerFactory().conv(8, 1, "c").xla


def test_xla_norm_reaches_group_norm_only():
    assert LayerFactory("group_norm", xla_norm=True).norm_layer("conv1").xla
    assert not LayerFactory("group_norm", xla_conv=True).norm_layer("conv1").xla  # one switch each
    assert not LayerFactory("group_norm", xla_norm=True).conv(8, 1, "c").xla
    assert isinstance(LayerFactory("frozen_bn", xla_norm=True).norm_layer("conv1"), keras.layers.BatchNormalization)


def test_without_xla_keeps_the_norm_and_drops_both_switches():
    layers = LayerFactory("group_norm", groups=8, xla_conv=True, xla_norm=True)
    plain = layers.without_xla()
    assert plain == LayerFactory("group_norm", groups=8)
    assert not plain.conv(8, 3, "c").xla and not plain.head_norm("conv1").xla
    assert layers.xla_conv and layers.xla_norm  # a new factory: the original keeps its switches


@pytest.mark.parametrize("norm", ["batch_norm", "group", None])
def test_an_unknown_norm_is_a_config_error_naming_it(norm):
    with pytest.raises(ConfigError, match=f"norm must be one of .*got {norm!r}"):
        LayerFactory(norm)
