"""MaskRCNN end to end: output contract, mixed precision dtypes, an overfit run, the heads on their RoIs only.

The XLA paths (an XLA train step, the ``runtime`` switches) are in ``test_model_xla.py``."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TWO_ELLIPSES as ELLIPSES
from conftest import ellipse_batch, tiny_config

from mrcnn_tf import inference
from mrcnn_tf.model import LOSS_NAMES, build_model
from mrcnn_tf.runs import set_precision
from mrcnn_tf.training import compile_model

SIZE = 64


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
    config = tiny_config(train={"mixed_precision": True}, runtime={"xla_conv": True})  # the CPU's XLA convolutions too
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
    config = model.config.replace(runtime={"jit_compile": True})
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


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_flip_tta_averages_the_heads_of_the_image_and_of_its_mirror():
    """The test-time flip, recomposed by hand with NumPy mirrors: the box head on the image's proposals and on the
    mirror image's features with mirrored proposals, class probabilities and mapped-back deltas averaged, then the
    mask head on both, the mirror's masks reversed along x and averaged."""
    keras.utils.set_random_seed(0)
    config = tiny_config(inference={"score_threshold": 0.0, "max_detections": 6})
    _, _, batch = ellipse_batch(config)
    images = batch["images"][:1]
    plain = build_model(config)
    flipping = build_model(config.replace(inference={"flip_tta": True}))
    flipping.set_weights(plain.get_weights())

    features = plain.extract_features(images)
    mirror = plain.extract_features(images[:, :, ::-1])
    proposals, valid = plain.proposal_layer(*plain.rpn_head(features), training=False)
    boxes = proposals.numpy()
    mirrored = np.stack([boxes[..., 0], SIZE - boxes[..., 3], boxes[..., 2], SIZE - boxes[..., 1]], axis=-1)
    logits, deltas = plain.box_head(plain.pool_boxes(features, proposals, xla=False))
    mirror_logits, mirror_deltas = plain.box_head(plain.pool_boxes(mirror, tf.constant(mirrored), xla=False))
    probs = (_softmax(logits.numpy()) + _softmax(mirror_logits.numpy())) / 2
    deltas = (deltas.numpy() + mirror_deltas.numpy() * [1, -1, 1, 1]) / 2
    want = plain.detection_layer(proposals, valid, tf.math.log(probs), tf.constant(deltas, tf.float32))
    found = want["boxes"].numpy()
    mirrored_found = np.stack([found[..., 0], SIZE - found[..., 3], found[..., 2], SIZE - found[..., 1]], axis=-1)
    want_masks = (plain._mask_probs(features, want).numpy()
                  + plain._mask_probs(mirror, dict(want, boxes=tf.constant(mirrored_found))).numpy()[..., ::-1]) / 2

    got = flipping(images)
    assert int(got["num_detections"][0]) == int(want["num_detections"][0]) > 0
    for key in ("boxes", "scores", "classes"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(got["mask_probs"], want_masks, atol=1e-5)
    # and it is not the plain model's answer: the mirror's half counts
    assert not np.allclose(plain(images)["scores"], got["scores"], atol=1e-4)


def test_a_model_that_trains_on_crops_takes_crop_batches_and_detects_on_whole_images():
    keras.utils.set_random_seed(0)
    config = tiny_config(image_size=128, train={"crop_size": 64})
    model = compile_model(config)
    crop_features = model.extract_features(tf.zeros([1, 64, 64, 3], tf.uint8))
    logits, _ = model.rpn_head(crop_features)
    assert model.proposals_for(64).anchors.shape[0] == logits.shape[1]  # the crop's anchors
    assert model.proposals_for(128) is model.proposal_layer and model.proposals_for(None) is model.proposal_layer
    with pytest.raises(ValueError, match="inputs of 96 pixels"):
        model.proposals_for(96)
    _, _, batch = ellipse_batch(tiny_config(image_size=64))  # a crop-sized batch, as the pipeline cuts them
    _, _, whole = ellipse_batch(config)  # validation stays on whole slices
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), epochs=1, steps_per_epoch=2, verbose=0,
                        validation_data=tf.data.Dataset.from_tensors(whole))
    assert np.isfinite(history.history["loss"]).all() and history.history["mask"][-1] > 0
    assert np.isfinite(history.history["val_loss"]).all()
    out = model(tf.zeros([1, 128, 128, 3], tf.uint8))
    assert out["masks"].shape[1:] == (config.inference.max_detections, 128, 128)
