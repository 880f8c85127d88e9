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
from mrcnn_tf.errors import ConfigError
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
    """``(model, version_dir)``: a tiny untrained model saved as a run folder and exported from it (version 1).
    Its in-process inference runs backbone + FPN under XLA, which the export leaves out."""
    root = tmp_path_factory.mktemp("export")
    model = build_model(tiny_config(runtime={"xla_features": True}))
    run_dir = save_run(model, str(root / "run"))
    return model, export.export_run(run_dir, str(root / "export"))


@pytest.fixture(scope="module")
def signatures(exported):
    return tf.saved_model.load(exported[1]).signatures


@pytest.fixture(scope="module")
def serve(signatures):
    return signatures[export.SIGNATURE]


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def png_bytes(image, extension=".png"):
    """``image`` (RGB, or grey ``[H, W]``, uint8 or uint16) encoded as a file's bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(extension, image)[1].tobytes()


def test_the_export_is_a_tf_serving_version_folder(exported):
    base, version = os.path.split(exported[1])
    assert version == "1" and os.path.isfile(os.path.join(exported[1], "saved_model.pb"))
    assert os.path.isdir(os.path.join(exported[1], "variables"))
    assert sorted(os.listdir(base)) == ["1"]  # nothing half-written left beside it


def test_each_variable_is_stored_once(exported):
    model, version_dir = exported
    float32_bytes = 4 * sum(int(np.prod(v.shape)) for v in model.variables)
    assert folder_bytes(version_dir) <= 1.1 * float32_bytes


def test_saved_model_cli_shows_both_signatures(exported):
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", exported[1], "--all"],
        capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    text = result.stdout
    default = text[text.index("signature_def['serving_default']"):]
    assert "inputs['images'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, -1, -1, 3)" in default
    encoded = text[text.index("signature_def['serving_encoded']"):]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in encoded
    for signature in (default, encoded):
        for name, dtype in OUTPUT_DTYPES.items():
            assert f"outputs['{name}'] tensor_info:\n        dtype: {dtype}" in signature


def test_export_json_documents_the_baked_in_settings(exported):
    with open(os.path.join(exported[1], export.EXPORT_FILE)) as f:
        settings = json.load(f)
    inference_config = exported[0].config.inference
    assert settings["version"] == 1
    assert settings["max_detections"] == inference_config.max_detections == 10
    assert settings["score_threshold"] == inference_config.score_threshold
    assert settings["nms_iou"] == inference_config.nms_iou
    assert settings["mask_threshold"] == inference_config.mask_threshold
    assert settings["flip_tta"] is False  # mrcnn-export --tta bakes the flip in:
    assert export.export_settings(exported[0].config.replace(inference={"flip_tta": True}))["flip_tta"] is True
    assert set(settings["signatures"]) == {export.SIGNATURE, export.ENCODED_SIGNATURE}
    assert settings["source"]["weights"] == "final" and settings["source"]["run"].endswith("run")


# The package is installed (pip install -e .): a folder first on PYTHONPATH holds an mrcnn_tf that refuses to
# import, so that nothing run below can use the package's code.
NO_PACKAGE = "raise ImportError('mrcnn_tf must not be needed to serve the export')\n"


def without_package_env(tmp_path):
    shadow = tmp_path / "shadow" / "mrcnn_tf"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(NO_PACKAGE)
    return {**os.environ, "PYTHONPATH": str(tmp_path / "shadow"), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_saved_model_cli_runs_the_version_folder_without_the_package(exported, tmp_path):
    env = without_package_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import mrcnn_tf"], env=env, capture_output=True, text=True,
                             cwd=tmp_path)
    assert blocked.returncode != 0 and "must not be needed" in blocked.stderr
    np.save(tmp_path / "images.npy", np.full((1, 48, 56, 3), 90, np.uint8))
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir", exported[1],
         "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"images={tmp_path / 'images.npy'}"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "num_detections" in result.stdout and "masks" in result.stdout


LOAD_AND_SERVE = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    signatures = tf.saved_model.load(sys.argv[1]).signatures
    images = np.load(sys.argv[2])
    outputs = signatures["serving_default"](images=tf.constant(images))
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    from_bytes = signatures["serving_encoded"](image_bytes=tf.constant(encoded))
    np.savez(sys.argv[3], **{key: value.numpy() for key, value in outputs.items()},
             **{"encoded_" + key: value.numpy() for key, value in from_bytes.items()})
    assert "mrcnn_tf" not in sys.modules
""")


def test_both_signatures_run_without_the_package_and_match_detect(exported, tmp_path):
    # detect() runs backbone + FPN and RPN head under XLA (the model's config), the export without: the same
    # detections, from the arrays and from the same images as PNG files.
    model, version_dir = exported
    images = ellipse_images()
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "serve.py").write_text(LOAD_AND_SERVE)
    subprocess.run([sys.executable, "serve.py", os.path.abspath(version_dir), "images.npy", "outputs.npz"],
                   cwd=tmp_path, env=without_package_env(tmp_path), check=True)
    outputs = dict(np.load(tmp_path / "outputs.npz"))

    assert outputs["boxes"].dtype == np.float32 and outputs["scores"].dtype == np.float32
    assert outputs["classes"].dtype == np.int32 and outputs["num_detections"].dtype == np.int32
    largest = int(outputs["num_detections"].max())
    assert outputs["masks"].dtype == np.uint8 and outputs["masks"].shape == (2, largest, 80, 96)  # no empty slots
    for key in OUTPUT_DTYPES:
        np.testing.assert_array_equal(outputs["encoded_" + key], outputs[key])
    for index, image in enumerate(images):
        expected = inference.detect(model, image)
        count = int(outputs["num_detections"][index])
        assert count == len(expected["scores"]) > 0
        np.testing.assert_allclose(outputs["boxes"][index, :count], expected["boxes"], atol=1e-3)
        np.testing.assert_allclose(outputs["scores"][index, :count], expected["scores"], atol=1e-5)
        np.testing.assert_array_equal(outputs["classes"][index, :count], expected["classes"])
        assert (outputs["masks"][index, :count] == expected["masks"]).mean() >= 0.999
        # Padding rows of the smaller image: score 0, zero masks.
        assert not outputs["scores"][index, count:].any() and not outputs["masks"][index, count:].any()


def test_the_encoded_signature_takes_grey_16_bit_and_jpeg_files(signatures):
    image = ellipse_images()[0]
    expected = signatures[export.SIGNATURE](images=tf.constant(image[None]))
    grey = signatures[export.ENCODED_SIGNATURE](image_bytes=tf.constant([png_bytes(image[..., 0])]))
    np.testing.assert_array_equal(grey["num_detections"], expected["num_detections"])
    np.testing.assert_allclose(grey["scores"], expected["scores"], atol=1e-5)
    deep = signatures[export.ENCODED_SIGNATURE](image_bytes=tf.constant([png_bytes(image[..., 0].astype(np.uint16)
                                                                                   * 257)]))
    np.testing.assert_allclose(deep["scores"], expected["scores"], atol=1e-5)
    jpeg = signatures[export.ENCODED_SIGNATURE](image_bytes=tf.constant([png_bytes(image, ".jpg")]))
    assert jpeg["masks"].shape[2:] == (80, 96)


def test_the_encoded_signature_refuses_images_of_different_sizes(signatures):
    files = [png_bytes(np.zeros((40, 40, 3), np.uint8)), png_bytes(np.zeros((40, 48, 3), np.uint8))]
    with pytest.raises(tf.errors.InvalidArgumentError, match="must share a size"):
        signatures[export.ENCODED_SIGNATURE](image_bytes=tf.constant(files))
    with pytest.raises(tf.errors.InvalidArgumentError):
        signatures[export.ENCODED_SIGNATURE](image_bytes=tf.constant([b"not an image"]))


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
    version_dir = export.export_model(model, str(tmp_path))
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        assert b"_XlaMustCompile" not in f.read()


def test_versions_count_up_and_an_existing_one_is_refused(exported, tmp_path):
    run_dir = save_run(exported[0], str(tmp_path / "run"))
    base = str(tmp_path / "export")
    assert export.export_run(run_dir, base, version=3).endswith(os.sep + "3")
    assert export.export_run(run_dir, base).endswith(os.sep + "4")  # the next after the highest
    with pytest.raises(ConfigError, match="exists: choose another --version .*5"):
        export.export_run(run_dir, base, version=4)
    assert sorted(os.listdir(base)) == ["3", "4"]


def test_a_failed_export_leaves_no_version_folder(exported, tmp_path, monkeypatch):
    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export.tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export.export_model(exported[0], str(tmp_path / "export"))
    assert os.listdir(tmp_path / "export") == []


def test_flags_override_the_runs_thresholds_and_weights(exported, tmp_path):
    model = exported[0]
    run_dir = save_run(model, str(tmp_path / "run"))
    best = runs.path(run_dir, runs.BEST_WEIGHTS_FILE)
    model.save_weights(best)
    version_dir = export.export_run(run_dir, str(tmp_path / "export"), weights="best", score_threshold=1.0,
                                    nms_iou=0.3, max_detections=4)
    with open(os.path.join(version_dir, export.EXPORT_FILE)) as f:
        settings = json.load(f)
    assert (settings["score_threshold"], settings["nms_iou"], settings["max_detections"]) == (1.0, 0.3, 4)
    assert settings["source"]["weights"] == "best"
    serve = tf.saved_model.load(version_dir).signatures[export.SIGNATURE]
    outputs = serve(images=tf.zeros([1, 50, 70, 3], tf.uint8))
    assert outputs["num_detections"].numpy().tolist() == [0]  # nothing scores above 1
    assert outputs["masks"].shape == (1, 0, 50, 70) and outputs["boxes"].shape == (1, 0, 4)
    with pytest.raises(ConfigError, match="weights file not found"):
        export.export_run(run_dir, str(tmp_path / "export"), weights=str(tmp_path / "missing.weights.h5"))


def test_float_images_are_rejected(serve):
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor but is a float"):
        serve(images=tf.zeros([1, 64, 64, 3], tf.float32))


def test_images_without_a_batch_axis_are_rejected(serve):
    expected = r"Shape of tensor images \[64,64,3\] is not compatible with expected shape \[\?,\?,\?,3\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        serve(images=tf.zeros([64, 64, 3], tf.uint8))
