"""MaskRCNN end to end: output contract, mixed precision dtypes, XLA train step, and an overfit run."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ellipse_image, tiny_config

from mrcnn_tf import inference
from mrcnn_tf.data.instances import make_example
from mrcnn_tf.layers import group_norm as group_norm_layer
from mrcnn_tf.layers.conv import Conv2D
from mrcnn_tf.model import LOSS_NAMES, build_model
from mrcnn_tf.ops import conv as conv_ops
from mrcnn_tf.ops import roi_align as roi_ops
from mrcnn_tf.training import compile_model, set_precision

SIZE = 64
ELLIPSES = [(18, 20, 11, 13), (44, 42, 9, 8)]  # (cy, cx, ry, rx): two separate tumours


def ellipse_batch(config, ellipses=ELLIPSES):
    image, masks = ellipse_image(config.image_size, ellipses)
    example = make_example(image, masks, np.ones(len(masks), np.int32), config.image_size,
                           config.max_instances, "synthetic")
    batch = {key: example[key][None] for key in ("gt_boxes", "gt_classes", "gt_masks")}
    batch["images"] = example["image"][None]
    return image, masks, batch


def mask_iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


@pytest.fixture
def float32_policy():
    yield
    set_precision(False)


def test_outputs_have_the_documented_shapes_and_dtypes(small_config):
    model = build_model(small_config)
    out = model(tf.zeros([2, SIZE, SIZE, 3], tf.uint8))
    d, m = small_config.inference.max_detections, small_config.roi.mask_size
    assert out["boxes"].shape == (2, d, 4) and out["boxes"].dtype == tf.float32
    assert out["scores"].shape == (2, d) and out["classes"].dtype == tf.int32
    assert out["mask_probs"].shape == (2, d, m, m)
    assert out["masks"].shape == (2, d, SIZE, SIZE) and out["masks"].dtype == tf.uint8
    assert out["num_detections"].shape == (2,)


def test_no_detection_is_an_empty_result_not_an_error():
    config = tiny_config(inference={"score_threshold": 1.0})  # no probability exceeds 1
    model = build_model(config)
    image = np.full((80, 48), 30, np.uint8)  # grey, not the network size
    found = inference.detect(model, image)
    assert found["boxes"].shape == (0, 4) and found["scores"].shape == (0,)
    assert found["masks"].shape == (0, 80, 48)


def test_mixed_float16_keeps_logits_deltas_masks_and_losses_float32(float32_policy):
    config = tiny_config(train={"mixed_precision": True, "xla_conv": True})  # the default's XLA convolutions too
    model = compile_model(config)
    assert model.backbone.layers[2].compute_dtype == "float16"  # the policy really applies
    _, _, batch = ellipse_batch(config)
    features = model.extract_features(batch["images"])
    logits, deltas = model.rpn_head(features)
    assert features[0].dtype == tf.float16
    assert logits.dtype == tf.float32 and deltas.dtype == tf.float32
    class_logits, box_deltas = model.box_head(model.box_roi_align(features[:4], batch["gt_boxes"]))
    mask_logits = model.mask_head(model.mask_roi_align(features[:4], batch["gt_boxes"]))
    assert class_logits.dtype == box_deltas.dtype == mask_logits.dtype == tf.float32
    losses = model.compute_losses(batch)
    assert all(losses[name].dtype == tf.float32 for name in LOSS_NAMES + ("loss",))
    out = model(batch["images"])
    assert out["boxes"].dtype == out["scores"].dtype == out["mask_probs"].dtype == tf.float32
    result = model.train_on_batch(batch, return_dict=True)  # loss scaling wraps the optimizer
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(result["loss"])


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


def test_overfits_two_ellipses_and_finds_both():
    config = tiny_config(train={"learning_rate": 0.02})
    image, masks, batch = ellipse_batch(config)
    model = compile_model(config)
    losses = []
    for _ in range(120):
        losses.append(model.train_on_batch(batch, return_dict=True)["loss"])
        model.reset_metrics()
    assert losses[-1] < 0.3 * losses[0], losses[::20]

    found = inference.detect(model, image)
    confident = found["scores"] >= 0.5
    assert confident.sum() == 2, found["scores"]
    for truth in masks:
        assert max(mask_iou(truth, pred) for pred in found["masks"][confident]) > 0.5

    # The same image at twice the size: boxes and masks come back in its own pixels.
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    found_big = inference.detect(model, big)
    assert found_big["masks"].shape[1:] == (2 * SIZE, 2 * SIZE)
    order, order_big = np.argsort(found["scores"])[::-1][:2], np.argsort(found_big["scores"])[::-1][:2]
    np.testing.assert_allclose(found_big["boxes"][order_big], 2 * found["boxes"][order], atol=1.0)


def _static_twin(model):
    """The same model with static head shapes (the XLA path: the mask head runs on every slot)."""
    config = model.config.replace(train={"jit_compile": True})
    twin = build_model(config)
    twin.set_weights(model.get_weights())
    return twin


def test_mask_head_on_the_detections_only_matches_every_slot():
    keras.utils.set_random_seed(0)
    config = tiny_config(inference={"score_threshold": 0.0, "max_detections": 6})
    _, _, batch = ellipse_batch(config)
    images = np.concatenate([batch["images"], np.zeros_like(batch["images"])])
    scores = np.sort(build_model(config)(images)["scores"].numpy()[0])[::-1]
    # A threshold between image 0's third and fourth score: 3 of its 6 slots valid, the rest padding.
    config = config.replace(inference={"score_threshold": float(scores[2] + scores[3]) / 2})
    keras.utils.set_random_seed(0)
    model = build_model(config)
    dynamic, static = model(images), _static_twin(model)(images)
    counts = dynamic["num_detections"].numpy()
    assert counts[0] == 3 and counts.max() < 6  # the dynamic path really skips slots
    for key in ("boxes", "mask_probs", "masks", "num_detections"):
        np.testing.assert_allclose(dynamic[key], static[key], atol=1e-5, err_msg=key)


def test_mask_loss_on_the_positives_only_matches_every_slot():
    keras.utils.set_random_seed(0)
    config = tiny_config(roi={"mask_rois_per_image": 8})
    model = build_model(config)
    twin = _static_twin(model)
    one = ellipse_batch(config, ELLIPSES[:1])[2]
    two = ellipse_batch(config)[2]
    batch = {key: np.concatenate([one[key], two[key]]) for key in one}  # images with 1 and 2 tumours
    features = model.extract_features(batch["images"])
    rois = model.sampled_rois(batch)
    counts = tf.reduce_sum(tf.cast(rois["positive"][:, :8], tf.int32), axis=1).numpy()
    assert counts.min() > 0 and counts.max() < 8  # slots beyond the positives exist
    np.testing.assert_allclose(model._mask_loss(features, rois, batch["gt_masks"]),
                               twin._mask_loss(features, rois, batch["gt_masks"]), rtol=1e-5)


def test_no_positive_roi_gives_a_zero_mask_loss_and_finite_gradients():
    config = tiny_config()
    model = build_model(config)
    image = np.full((1, SIZE, SIZE, 3), 30, np.uint8)
    batch = {"images": image, "gt_boxes": np.zeros((1, config.max_instances, 4), np.float32),
             "gt_classes": -np.ones((1, config.max_instances), np.int32),
             "gt_masks": np.zeros((1, config.max_instances, SIZE, SIZE), np.uint8)}
    with tf.GradientTape() as tape:
        values = model.compute_losses(batch)
    assert float(values["mask"]) == 0.0
    gradients = tape.gradient(values["loss"], model.trainable_variables)
    assert all(np.isfinite(g).all() for g in gradients if g is not None)


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
