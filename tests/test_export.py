"""mrcnn_tf.export: the SavedModel's signature, that it runs without the package, and that it agrees with detect()
(its command line, ``mrcnn-export``: tests/cli/test_export.py)."""
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from mrcnn_tf import export, inference, runs
from mrcnn_tf.layers import group_norm as group_norm_layer
from mrcnn_tf.model import build_model
from mrcnn_tf.ops import conv as conv_ops
from mrcnn_tf.ops.group_norm import group_norm_xla

OUTPUT_DTYPES = {"boxes": "DT_FLOAT", "scores": "DT_FLOAT", "classes": "DT_INT32", "masks": "DT_UINT8",
                 "num_detections": "DT_INT32"}


def save_run(model, run_dir):
    """A minimal run folder (config + final weights) of ``model``, as ``runs.load_run`` reads it."""
    os.makedirs(run_dir, exist_ok=True)
    runs.write_config(run_dir, model.config)
    model.save_weights(runs.path(run_dir, runs.WEIGHTS_FILE))
    return run_dir


def ellipse_images():
    """Two 80x96 RGB uint8 images, each with one bright ellipse on a noisy dark background."""
    rng = np.random.default_rng(3)
    images = []
    for centre, axes in (((48, 40), (20, 14)), ((30, 50), (12, 18))):
        image = rng.normal(50, 8, (80, 96)).clip(0, 255).astype(np.uint8)
        cv2.ellipse(image, centre, axes, 0, 0, 360, 210, -1)
        images.append(np.repeat(image[..., None], 3, axis=2))
    return np.stack(images)  # [2, 80, 96, 3]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(model, export_dir)``: a tiny untrained model saved as a run folder and exported from it. Its
    in-process inference runs backbone + FPN under XLA, which the export leaves out."""
    root = tmp_path_factory.mktemp("export")
    model = build_model(tiny_config(runtime={"xla_features": True}))
    run_dir = save_run(model, str(root / "run"))
    return model, export.export_run(run_dir, str(root / "export"))


@pytest.fixture(scope="module")
def serve(exported):
    return tf.saved_model.load(exported[1]).signatures[export.SIGNATURE]


def test_saved_model_cli_shows_the_signature(exported):
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", exported[1], "--all"],
        capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    text = result.stdout
    signature = text[text.index("signature_def['serving_default']"):]
    assert "inputs['images'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, -1, -1, 3)" in signature
    for name, dtype in OUTPUT_DTYPES.items():
        assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}" in signature


def test_export_json_documents_the_baked_in_settings(exported):
    with open(os.path.join(exported[1], export.EXPORT_FILE)) as f:
        settings = json.load(f)
    inference_config = exported[0].config.inference
    assert settings["max_detections"] == inference_config.max_detections == 10
    assert settings["score_threshold"] == inference_config.score_threshold
    assert settings["nms_iou"] == inference_config.nms_iou
    assert settings["mask_threshold"] == inference_config.mask_threshold


# The package is installed (pip install -e .): the script blocks its import, so that loading and serving the
# SavedModel cannot use any of its code.
LOAD_WITHOUT_PACKAGE = textwrap.dedent("""
    import sys
    sys.modules["mrcnn_tf"] = None  # from here on, import mrcnn_tf (or any of its modules) raises ImportError
    import numpy as np
    import tensorflow as tf
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    outputs = serve(images=tf.constant(np.load(sys.argv[2])))
    np.savez(sys.argv[3], **{key: value.numpy() for key, value in outputs.items()})
    assert not [name for name in sys.modules if name.startswith("mrcnn_tf.")]
""")


def test_export_runs_without_the_package_and_matches_detect(exported, tmp_path):
    # detect() runs backbone + FPN and RPN head under XLA (the model's config), the export without: the same
    # detections.
    model, export_dir = exported
    images = ellipse_images()
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "serve.py").write_text(LOAD_WITHOUT_PACKAGE)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    subprocess.run([sys.executable, "serve.py", os.path.abspath(export_dir), "images.npy", "outputs.npz"],
                   cwd=tmp_path, env=env, check=True)
    outputs = dict(np.load(tmp_path / "outputs.npz"))

    assert outputs["boxes"].dtype == np.float32 and outputs["scores"].dtype == np.float32
    assert outputs["classes"].dtype == np.int32 and outputs["num_detections"].dtype == np.int32
    assert outputs["masks"].dtype == np.uint8 and outputs["masks"].shape == (2, 10, 80, 96)
    for index, image in enumerate(images):
        expected = inference.detect(model, image)
        count = int(outputs["num_detections"][index])
        assert count == len(expected["scores"]) > 0
        np.testing.assert_allclose(outputs["boxes"][index, :count], expected["boxes"], atol=1e-3)
        np.testing.assert_allclose(outputs["scores"][index, :count], expected["scores"], atol=1e-5)
        np.testing.assert_array_equal(outputs["classes"][index, :count], expected["classes"])
        assert (outputs["masks"][index, :count] == expected["masks"]).mean() >= 0.999
        # Padding rows: score 0, zero masks.
        assert not outputs["scores"][index, count:].any() and not outputs["masks"][index, count:].any()


def test_the_saved_model_has_no_xla(exported):
    # TF Serving's CPU build does not compile XLA by default: nothing in the export may require it.
    with open(os.path.join(exported[1], "saved_model.pb"), "rb") as f:
        assert b"_XlaMustCompile" not in f.read()


def test_exporting_in_process_after_xla_calls_leaves_them_out(tmp_path, monkeypatch):
    # train.py exports the model it trained, whose XLA functions (GroupNorm's and the convolutions' training calls,
    # the crop RoIAlign's gradient, inference's backbone + FPN and RPN head) have been traced by then: none may reach
    # the SavedModel.
    model = build_model(tiny_config(runtime={"xla_group_norm": True, "xla_conv": True, "xla_features": True}))
    norm, conv = model.backbone.get_layer("conv1_gn"), model.backbone.get_layer("conv1_conv")
    calls = []
    monkeypatch.setattr(group_norm_layer, "group_norm_xla", lambda *args: calls.append(1) or group_norm_xla(*args))
    conv2d = conv_ops.conv2d
    monkeypatch.setattr(conv_ops, "conv2d", lambda *args: calls.append(2) or conv2d(*args))
    norm(tf.zeros([1, 8, 8, norm.gamma.shape[0]]), training=True)
    conv(tf.zeros([1, 14, 14, 3]), training=True)
    features = model.extract_features(tf.zeros([1, 64, 64, 3], tf.uint8))[:4]
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled = model.box_roi_align(features, tf.constant([[[4.0, 4.0, 30.0, 40.0]]]), crop=True)
    assert all(g is not None for g in tape.gradient(pooled, features))  # the crop RoIAlign's XLA gradient
    model(tf.zeros([1, 64, 64, 3], tf.uint8), xla_features=True)
    assert calls == [1, 2]  # the training calls went through the XLA functions
    export.export_model(model, str(tmp_path))
    with open(os.path.join(tmp_path, "saved_model.pb"), "rb") as f:
        assert b"_XlaMustCompile" not in f.read()


def test_black_image_gives_no_detection_at_score_threshold_one(tmp_path):
    model = build_model(tiny_config(inference={"score_threshold": 1.0}))
    serve = tf.saved_model.load(export.export_model(model, str(tmp_path))).signatures[export.SIGNATURE]
    outputs = serve(images=tf.zeros([1, 50, 70, 3], tf.uint8))
    assert outputs["num_detections"].numpy().tolist() == [0]
    assert outputs["masks"].shape == (1, 10, 50, 70) and not outputs["masks"].numpy().any()
    assert not outputs["scores"].numpy().any()


def test_float_images_are_rejected(serve):
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor but is a float"):
        serve(images=tf.zeros([1, 64, 64, 3], tf.float32))


def test_images_without_a_batch_axis_are_rejected(serve):
    expected = r"Shape of tensor images \[64,64,3\] is not compatible with expected shape \[\?,\?,\?,3\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        serve(images=tf.zeros([64, 64, 3], tf.uint8))
