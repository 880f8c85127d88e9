"""mrcnn_tf.predict: masks, overlays and COCO results for a folder of images, from an export or a run folder
(its command line, ``mrcnn-predict``: tests/cli/test_predict.py)."""
import json
import os

import cv2
import numpy as np
import pytest
import tifffile

from conftest import tiny_config
from mrcnn_tf import export, predict, runs
from mrcnn_tf.errors import ConfigError, DataError
from mrcnn_tf.model import build_model


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """``(run_dir, export_dir)`` of one tiny untrained model."""
    root = tmp_path_factory.mktemp("predict")
    model = build_model(tiny_config())
    run_dir = str(root / "run")
    os.makedirs(run_dir)
    runs.write_config(run_dir, model.config)
    model.save_weights(runs.path(run_dir, runs.WEIGHTS_FILE))
    return run_dir, export.export_model(model, str(root / "export"))


@pytest.fixture
def image_folder(tmp_path):
    """A grey 1-channel PNG (70x90) and a colour TIFF (80x96), each with a bright ellipse."""
    folder = tmp_path / "images"
    folder.mkdir()
    grey = np.full((70, 90), 40, np.uint8)
    cv2.ellipse(grey, (45, 35), (15, 10), 0, 0, 360, 220, -1)
    cv2.imwrite(str(folder / "b_grey.png"), grey)
    colour = np.full((80, 96, 3), 30, np.uint8)
    cv2.ellipse(colour, (40, 50), (18, 12), 0, 0, 360, (230, 200, 210), -1)
    tifffile.imwrite(folder / "a_colour.tif", colour, photometric="rgb")
    return folder


def read_outputs(out_dir):
    with open(os.path.join(out_dir, "predictions.json")) as f:
        results = json.load(f)
    with open(os.path.join(out_dir, "images.json")) as f:
        names = json.load(f)
    return results, names


def check_outputs(out_dir, sizes):
    """The files of one predict run over images named like ``sizes`` (``{file name: (H, W)}``)."""
    results, names = read_outputs(out_dir)
    assert names == {str(i): name for i, name in enumerate(sorted(sizes), start=1)}
    assert {r["image_id"] for r in results} <= set(range(1, len(sizes) + 1))
    for image_id, name in names.items():
        stem = os.path.splitext(name)[0]
        own = [r for r in results if r["image_id"] == int(image_id)]
        ids = cv2.imread(os.path.join(out_dir, "masks", stem + ".png"), cv2.IMREAD_UNCHANGED)
        assert ids.shape == sizes[name] and ids.dtype == np.uint8
        assert ids.max() <= len(own)
        overlay = cv2.imread(os.path.join(out_dir, "overlays", stem + ".png"), cv2.IMREAD_UNCHANGED)
        assert overlay.shape == sizes[name] + (3,)
        for result in own:
            assert result["category_id"] == 1 and len(result["bbox"]) == 4
            assert result["segmentation"]["size"] == list(sizes[name])
            assert isinstance(result["segmentation"]["counts"], str)
    return results


SIZES = {"a_colour.tif": (80, 96), "b_grey.png": (70, 90)}


def test_predict_with_an_export_and_with_a_run_folder(model_dirs, image_folder, tmp_path):
    run_dir, export_dir = model_dirs
    from_export = str(tmp_path / "from_export")
    returned = predict.predict(export_dir, str(image_folder), from_export, score_threshold=0.0)
    results = check_outputs(from_export, SIZES)
    assert [r["image_id"] for r in returned] == [r["image_id"] for r in results]  # what it wrote
    assert {r["image_id"] for r in results} == {1, 2}  # the untrained tiny model scores ~0.5 everywhere

    from_run = str(tmp_path / "from_run")
    run_results = predict.predict(run_dir, str(image_folder), from_run, score_threshold=0.0)
    check_outputs(from_run, SIZES)
    assert len(run_results) == len(results)
    for got, expected in zip(run_results, results):
        assert got["image_id"] == expected["image_id"]
        np.testing.assert_allclose(got["bbox"], expected["bbox"], atol=1e-3)


def test_score_threshold_filters_and_single_file_works(model_dirs, image_folder, tmp_path):
    out_dir = str(tmp_path / "out")
    results = predict.predict(model_dirs[1], str(image_folder / "b_grey.png"), out_dir, score_threshold=1.01)
    assert results == []
    results, names = read_outputs(out_dir)
    assert results == [] and names == {"1": "b_grey.png"}
    assert not cv2.imread(os.path.join(out_dir, "masks", "b_grey.png"), cv2.IMREAD_UNCHANGED).any()


def test_instance_map_puts_the_best_score_on_top():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2] = 1  # best score
    masks[1, 1:] = 1
    ids = predict.instance_map(masks)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids[:, 0], [1, 1, 2, 2])
    assert predict.instance_map(np.zeros((300, 2, 2), np.uint8)).dtype == np.uint16


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(ConfigError, match="expected an export folder"):
        predict.load_detector(str(tmp_path))
    with pytest.raises(DataError, match="no image files"):
        predict.list_images(str(tmp_path))
