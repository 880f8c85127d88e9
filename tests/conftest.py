"""Shared test fixtures: tiny configurations and synthetic images, so that the suite runs in minutes on 2 cores."""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.data.instances import make_example  # noqa: E402

SHARED_LGG = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "lgg")


# The slowest test files, slowest first (each traces, trains or exports whole models: 35-280 s on 2 cores, measured
# with ``--durations``). ``make test`` hands whole files to two pytest-xdist workers in collection order
# (``--dist loadfile --no-loadscope-reorder``): these start first and the many quick files fill the gaps, instead of
# a long file starting last and running alone while the other worker idles. (xdist hands a worker its next file
# when 2 tests or fewer of its current one are left, so the one-test files do not follow each other.)
SLOW_FILES = (
    "test_model_xla.py", "cli/test_train.py", "test_model.py", "test_export.py", "test_distribute.py",
    "cli/test_evaluate.py", "test_resume.py", "test_predict.py", "test_budget.py",
)
TESTS = os.path.dirname(os.path.realpath(__file__))


def collection_rank(path):
    """Where the test file ``path`` goes: its place in ``SLOW_FILES``, or after them all (symbolic links resolved)."""
    relative = os.path.relpath(os.path.realpath(path), TESTS).replace(os.sep, "/")
    return SLOW_FILES.index(relative) if relative in SLOW_FILES else len(SLOW_FILES)


def pytest_collection_modifyitems(items):
    """Collect ``SLOW_FILES`` first, in their order; the order within a file, and of the other files, stays."""
    items.sort(key=lambda item: collection_rank(item.path))


def load_benchmark(name):
    """``benchmarks/<name>.py`` as a module (the benchmark scripts are not a package)."""
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def heavy_modules_after(code):
    """The TensorFlow and Keras modules loaded once ``code`` ran in a new interpreter, started in a folder outside
    the project (so that it imports the installed package); ``[]`` when none was."""
    check = code + ("\nimport json, sys\n"
                    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", check], cwd=tempfile.gettempdir(), env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_weights_file_loads(theirs, ours, tmp_path):
    """``theirs``' ``.weights.h5`` file loads into ``ours`` unchanged (such files key a layer by its class name)."""
    path = str(tmp_path / "theirs.weights.h5")
    theirs.save_weights(path)
    ours.load_weights(path)
    for want, got in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(got, want)


def tiny_config(image_size=64, **sections):
    """A small but complete configuration: every part of the model runs, with narrow heads and few RoIs."""
    config = Config(image_size=image_size, max_instances=4).replace(
        anchors={"sizes": tuple(s * image_size // 256 for s in (16, 32, 64, 128, 256))},
        rpn={"batch_size_per_image": 64, "train_pre_nms_topk": 200, "train_post_nms_topk": 100,
             "test_pre_nms_topk": 100, "test_post_nms_topk": 50},
        roi={"batch_size_per_image": 32, "fc_dim": 64, "mask_conv_dim": 32, "mask_rois_per_image": 8},
        inference={"max_detections": 10},
        backbone={"group_norm_groups": 8, "fpn_channels": 32},
        # xla_features: an XLA compile costs ~30 s (tests/test_export.py); xla_group_norm, xla_conv: an XLA compile
        # per GroupNorm or convolution shape (tests/ops/test_group_norm.py, tests/ops/test_conv.py)
        runtime={"xla_features": False, "xla_group_norm": False, "xla_conv": False},
    )
    return config.replace(**sections) if sections else config


@pytest.fixture
def small_config():
    return tiny_config()


def ellipse_masks(size, ellipses):
    """Binary instance masks ``[len(ellipses), size, size]`` of filled ellipses ``(cy, cx, ry, rx)``."""
    masks = np.zeros((len(ellipses), size, size), np.uint8)
    for mask, (cy, cx, ry, rx) in zip(masks, ellipses):
        cv2.ellipse(mask, (cx, cy), (rx, ry), 0, 0, 360, 1, -1)
    return masks


def ellipse_image(size, ellipses, seed=0):
    """An MRI-like grey image ``[size, size, 3]`` uint8 with bright ellipses, and their masks."""
    rng = np.random.default_rng(seed)
    masks = ellipse_masks(size, ellipses)
    image = rng.normal(60, 10, (size, size)).clip(0, 255)
    image[masks.any(axis=0)] = 200
    return np.repeat(image.astype(np.uint8)[..., None], 3, axis=2), masks


TWO_ELLIPSES = [(18, 20, 11, 13), (44, 42, 9, 8)]  # (cy, cx, ry, rx): two separate tumours in a 64-px image


def ellipse_batch(config, ellipses=TWO_ELLIPSES):
    """``(image, masks, batch)``: one ``ellipse_image`` of ``config.image_size`` px as a batch of 1, keyed as the
    model's train step reads it."""
    image, masks = ellipse_image(config.image_size, ellipses)
    example = make_example(image, masks, np.ones(len(masks), np.int32), config.image_size,
                           config.max_instances, "synthetic")
    batch = {key: example[key][None] for key in ("gt_boxes", "gt_classes", "gt_masks")}
    batch["images"] = example["image"][None]
    return image, masks, batch


def require_shared_lgg():
    """Skip the calling test with a clear message when the shared LGG data is not beside the project."""
    if not os.path.isdir(SHARED_LGG):
        pytest.skip(f"shared LGG data not found at {os.path.abspath(SHARED_LGG)}")
    return SHARED_LGG


LGG_PATIENTS = ("TCGA_AA_0001_20000101", "TCGA_BB_0002_20010202")
LGG_ELLIPSES = {1: [], 2: [(40, 44, 12, 16)], 3: [(30, 30, 10, 12), (70, 64, 8, 10)]}  # slice -> (cy, cx, ry, rx)
# Two patients of one tumour slice and one tumour-free slice each: an evaluation with a split of one patient each.
TWO_PATIENTS = ("TCGA_AA_0001_20000101", "TCGA_AA_0002_20000101")
ONE_TUMOUR_ONE_EMPTY = {1: [(30, 30, 10, 12)], 2: []}


def write_lgg_folder(root, patients=LGG_PATIENTS, ellipses=LGG_ELLIPSES, size=96):
    """A tiny LGG-layout folder: each patient gets one 96-px slice per entry of ``ellipses`` (TIFF + mask)."""
    import tifffile

    for p, folder in enumerate(patients):
        os.makedirs(os.path.join(root, folder))
        for number, shapes in ellipses.items():
            image, masks = ellipse_image(size, shapes, seed=10 * p + number)
            mask = masks.max(axis=0) * 255 if len(masks) else np.zeros((size, size), np.uint8)
            stem = os.path.join(root, folder, f"{folder}_{number}")
            tifffile.imwrite(stem + ".tif", image, photometric="rgb")
            tifffile.imwrite(stem + "_mask.tif", mask.astype(np.uint8))
