"""MaskRCNN's XLA paths: a whole train step under XLA, and each ``train.xla_*`` setting (and ``crop_roi_align``)
against the plain model: the same losses and gradients, the XLA function really called, by the XLA model only."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ellipse_batch, tiny_config

from mrcnn_tf.layers import group_norm as group_norm_layer
from mrcnn_tf.layers.conv import Conv2D
from mrcnn_tf.model import LOSS_NAMES, build_model
from mrcnn_tf.ops import conv as conv_ops
from mrcnn_tf.ops import roi_align as roi_ops
from mrcnn_tf.training import compile_model


def test_xla_conv_is_a_cpu_measure(monkeypatch):
    def xla_conv_layers(model):
        return [layer.xla for layer in model._flatten_layers() if isinstance(layer, Conv2D)]

    config = tiny_config(train={"xla_conv": True})
    assert all(xla_conv_layers(build_model(config)))  # backbone, FPN and RPN head
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert not any(xla_conv_layers(build_model(config)))  # a GPU keeps cuDNN's convolutions


def test_train_step_compiles_with_xla(small_config):
    config = small_config.replace(train={"jit_compile": True, "xla_conv": True})  # XLA functions nested in XLA
    model = compile_model(config)
    _, _, batch = ellipse_batch(config)
    first = model.train_on_batch(batch, return_dict=True)
    second = model.train_on_batch(batch, return_dict=True)
    assert np.isfinite(first["loss"]) and np.isfinite(second["loss"])


XLA_SETTINGS = {  # train setting -> (module, name) of the function its layers call (XLA-compiled, or with an XLA
    # gradient: crop_roi_align)
    "xla_group_norm": (group_norm_layer, "group_norm_xla"),
    "xla_conv": (conv_ops, "conv2d"),
    "crop_roi_align": (roi_ops, "crop_multilevel_roi_align"),
}


@pytest.mark.parametrize("setting", sorted(XLA_SETTINGS))
def test_xla_setting_gives_the_same_losses_and_gradients(monkeypatch, setting):
    config = tiny_config()
    keras.utils.set_random_seed(0)
    plain = build_model(config.replace(train={setting: False}))
    xla = build_model(config.replace(train={setting: True}))
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
