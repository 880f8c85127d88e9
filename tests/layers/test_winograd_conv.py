"""layers/winograd_conv.py: a drop-in Conv2D (same weights, same outputs), and the mask head built on it."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.layers.mask_head import MaskHead
from mrcnn_tf.layers.winograd_conv import WinogradConv2D


def _random(shape, seed=0, dtype=np.float32):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def test_same_weights_and_outputs_as_conv2d():
    x = _random((2, 9, 12, 5))
    plain = keras.layers.Conv2D(7, 3, padding="same", activation="relu")
    ours = WinogradConv2D(7, activation="relu")
    plain(x), ours(x)
    ours.set_weights(plain.get_weights())  # the same variables: kernel [3, 3, 5, 7] and bias [7]
    np.testing.assert_allclose(ours(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=5), dict(strides=2), dict(padding="valid"),
                                    dict(dilation_rate=2), dict(groups=2), dict(data_format="channels_first")])
def test_refuses_what_it_does_not_compute(kwargs):
    with pytest.raises(ValueError, match="3x3, stride 1"):
        WinogradConv2D(4, **kwargs)


def test_mask_head_loads_the_direct_heads_weights_and_gives_its_masks():
    pooled = _random((1, 3, 14, 14, 8), seed=1)
    direct = MaskHead(2, conv_dim=8, norm="group_norm", groups=4)
    winograd = MaskHead(2, conv_dim=8, norm="group_norm", groups=4, winograd=True)
    direct(pooled), winograd(pooled)
    assert [w.path for w in winograd.weights] == [w.path.replace(direct.name, winograd.name) for w in direct.weights]
    winograd.set_weights(direct.get_weights())
    np.testing.assert_allclose(winograd(pooled), direct(pooled), rtol=1e-4, atol=1e-4)


def test_computes_in_float16_under_mixed_float16():
    x = _random((1, 6, 6, 3), dtype=np.float16)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        plain, ours = keras.layers.Conv2D(4, 3, padding="same"), WinogradConv2D(4)
        plain(x), ours(x)
        ours.set_weights(plain.get_weights())
        expected, out = plain(x), ours(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == expected.dtype == tf.float16
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-2, atol=1e-2)


def test_the_model_takes_it_from_the_config_and_detects_as_with_direct_convolutions():
    from conftest import ellipse_image, tiny_config
    from mrcnn_tf.model import build_model

    config = tiny_config().replace(inference={"score_threshold": 0.0})  # random weights: keep every detection
    direct, ours = build_model(config), build_model(config.replace(roi={"mask_conv_winograd": True}))
    assert all(isinstance(conv, WinogradConv2D) for conv in ours.mask_head.convs)
    assert not any(isinstance(conv, WinogradConv2D) for conv in direct.mask_head.convs)
    ours.set_weights(direct.get_weights())
    image = tf.constant(ellipse_image(64, [(32, 32, 12, 8)])[0][None])
    expected, found = direct(image, training=False), ours(image, training=False)
    np.testing.assert_allclose(found["mask_probs"], expected["mask_probs"], atol=1e-4)
    np.testing.assert_allclose(found["boxes"], expected["boxes"])
