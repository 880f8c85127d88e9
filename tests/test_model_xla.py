"""MaskRCNN's XLA paths: the device policy that picks them, a whole train step under XLA, and each
``runtime.xla_*`` switch (and ``crop_roi_align``) against the plain model: the same losses and gradients, the XLA
function really called, by the XLA model only."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ellipse_batch, tiny_config

from mrcnn_tf.config import DEVICE_POLICIES, RuntimeConfig
from mrcnn_tf.layers import group_norm as group_norm_layer
from mrcnn_tf.layers.conv import Conv2D
from mrcnn_tf.model import LOSS_NAMES, build_model
from mrcnn_tf.ops import conv as conv_ops
from mrcnn_tf.ops import roi_align as roi_ops
from mrcnn_tf.training import compile_model


def _xla_conv_layers(model):
    """``xla`` of each convolution of backbone, FPN and RPN head (the mask head's are always plain)."""
    assert not any(conv.xla for conv in model.mask_head.convs)  # its RoI count changes every step
    flags = [layer.xla for part in (model.backbone, model.fpn, model.rpn_head) for layer in part._flatten_layers()
             if isinstance(layer, Conv2D)]
    assert len(flags) == 53 + 8 + 1  # ResNet50's, FPN's lateral and output convs, the RPN head's shared one
    return flags


def _visible_gpus(monkeypatch, gpus):
    """Make TensorFlow report ``gpus`` (a list of names) as its GPUs, while the model is built."""
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])


def test_the_model_resolves_the_device_policy_once(monkeypatch):
    _visible_gpus(monkeypatch, [])
    model = build_model(tiny_config(runtime={"xla_conv": None, "xla_features": None}))
    # The CPU policy, but xla_group_norm, which tiny_config sets: a given switch wins.
    assert model.runtime == RuntimeConfig(device="cpu", **dict(DEVICE_POLICIES["cpu"], xla_group_norm=False))
    assert model.runtime.xla_conv and all(_xla_conv_layers(model))
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, group_norm_layer.GroupNormalization)]
    assert norms and not any(norm.xla for norm in norms)


def test_xla_conv_is_a_cpu_measure(monkeypatch):
    _visible_gpus(monkeypatch, ["GPU:0"])
    model = build_model(tiny_config(runtime={"xla_conv": None}))
    assert model.runtime.device == "gpu" and not model.runtime.xla_conv
    assert not any(_xla_conv_layers(model))  # a GPU keeps cuDNN's convolutions
    # device "cpu" chooses the CPU policy whatever TensorFlow sees; a switch given wins over the device's policy.
    assert all(_xla_conv_layers(build_model(tiny_config(runtime={"xla_conv": None, "device": "cpu"}))))
    assert all(_xla_conv_layers(build_model(tiny_config(runtime={"xla_conv": True}))))


def test_train_step_compiles_with_xla(small_config):
    config = small_config.replace(runtime={"jit_compile": True, "xla_conv": True})  # XLA functions nested in XLA
    model = compile_model(config)
    _, _, batch = ellipse_batch(config)
    first = model.train_on_batch(batch, return_dict=True)
    second = model.train_on_batch(batch, return_dict=True)
    assert np.isfinite(first["loss"]) and np.isfinite(second["loss"])


XLA_SETTINGS = {  # runtime switch -> (module, name) of the function its layers call (XLA-compiled, or with an XLA
    # gradient: crop_roi_align)
    "xla_group_norm": (group_norm_layer, "group_norm_xla"),
    "xla_conv": (conv_ops, "conv2d"),
    "crop_roi_align": (roi_ops, "crop_multilevel_roi_align"),
}


@pytest.mark.parametrize("setting", sorted(XLA_SETTINGS))
def test_xla_setting_gives_the_same_losses_and_gradients(monkeypatch, setting):
    config = tiny_config()
    keras.utils.set_random_seed(0)
    plain = build_model(config.replace(runtime={setting: False}))
    xla = build_model(config.replace(runtime={setting: True}))
    xla.set_weights(plain.get_weights())
    xla_norms = [layer for layer in xla._flatten_layers() if getattr(layer, "xla", False)
                 and isinstance(layer, group_norm_layer.GroupNormalization)]
    if setting == "xla_group_norm":  # the mask head's RoI count changes every step: no XLA program per count
        assert xla.backbone.get_layer("conv1_gn") in xla_norms and xla.mask_head.norms[0] is not None
        assert not any(norm.xla for norm in xla.mask_head.norms)
    _, _, batch = ellipse_batch(config)
    results = []
    calls = []  # the model whose layers called the XLA function, once per call
    module, name = XLA_SETTINGS[setting]
    xla_function = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args: calls.append(model) or xla_function(*args))
    for model in (plain, xla):
        keras.utils.set_random_seed(0)  # the same anchor and RoI samples
        # Gradients of the RPN's losses only (backbone, FPN, RPN head): their anchor targets depend on the ground
        # truth alone. The heads' RoIs come from near-tied proposal scores at random init, which rounding can
        # reorder: at another init the head gradients differed by 2% (the losses by < 1e-4, checked below). The mask
        # head's GroupNorm stays plain (asserted above). For crop_roi_align everything before the RoI sampling is the
        # same ops, so the RoIs are the same: the box losses' gradients reach the FPN through the RoIAlign's (custom)
        # gradient alone.
        crop = setting == "crop_roi_align"
        with tf.GradientTape() as tape:
            values = model.compute_losses(batch, training=True)
            loss = values["cls"] + values["box"] if crop else values["rpn_objectness"] + values["rpn_box"]
        layers = (model.fpn,) if crop else (model.backbone, model.fpn, model.rpn_head)
        variables = [v for layer in layers for v in layer.trainable_variables]
        results.append((values, tape.gradient(loss, variables)))
    (values, gradients), (xla_values, xla_gradients) = results
    for name in LOSS_NAMES:
        np.testing.assert_allclose(xla_values[name], values[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert calls and all(caller is xla for caller in calls)  # XLA really ran, in the XLA model only
    if setting == "xla_group_norm":  # once per backbone and FPN GroupNorm, none for the mask head's
        assert len(calls) == len(xla_norms)
    assert [g is None for g in xla_gradients] == [g is None for g in gradients]  # e.g. levels the RPN skips
    assert sum(g is not None for g in gradients) > len(gradients) // 2
    for want, got in zip(gradients, xla_gradients):
        if want is not None:  # relative to the largest: the box losses' gradients are small at init
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))
