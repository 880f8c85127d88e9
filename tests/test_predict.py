"""mrcnn_tf.predict: masks, overlays and COCO results for a folder of images, from an export or a run folder
(its command line, ``mrcnn-predict``: tests/cli/test_predict.py)."""
import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf
import tifffile

from conftest import tiny_config
from mrcnn_tf import detectors, export, predict, runs, visualize
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
    export.export_model(model, str(root / "export"))
    return run_dir, str(root / "export")  # the base folder: predict takes its highest version


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
        scale = -(-visualize.READABLE_SIDE // max(sizes[name]))  # enlarged to a readable size, legend below
        assert overlay.shape == (sizes[name][0] * scale + visualize.LEGEND_HEIGHT, sizes[name][1] * scale, 3)
        colour = cv2.imread(os.path.join(out_dir, "masks_colour", stem + ".png"), cv2.IMREAD_UNCHANGED)
        assert colour.shape == sizes[name] + (3,) and ((colour.max(axis=2) > 0) == (ids > 0)).all()
        for result in own:
            assert result["category_id"] == 1 and len(result["bbox"]) == 4
            assert result["segmentation"]["size"] == list(sizes[name])
            assert isinstance(result["segmentation"]["counts"], str)
    return results


SIZES = {"a_colour.tif": (80, 96), "b_grey.png": (70, 90)}


def test_predict_with_an_export_and_with_a_run_folder(model_dirs, image_folder, tmp_path):
    run_dir, export_dir = model_dirs
    from_export = str(tmp_path / "from_export")
    summary = predict.predict(export_dir, str(image_folder), from_export, score_threshold=0.0)
    results = check_outputs(from_export, SIZES)
    assert [r["image_id"] for r in summary["results"]] == [r["image_id"] for r in results]  # what it wrote
    assert (summary["images"], summary["images_with_tumour"], summary["tumours"]) == (2, 2, len(results))
    assert {r["image_id"] for r in results} == {1, 2}  # the untrained tiny model scores ~0.5 everywhere

    from_run = str(tmp_path / "from_run")
    run_results = predict.predict(run_dir, str(image_folder), from_run, score_threshold=0.0)["results"]
    check_outputs(from_run, SIZES)
    assert len(run_results) == len(results)
    for got, expected in zip(run_results, results):
        assert got["image_id"] == expected["image_id"]
        np.testing.assert_allclose(got["bbox"], expected["bbox"], atol=1e-3)


def test_score_threshold_filters_and_single_file_works(model_dirs, image_folder, tmp_path):
    out_dir = str(tmp_path / "out")
    summary = predict.predict(model_dirs[1], str(image_folder / "b_grey.png"), out_dir, score_threshold=1.01)
    assert summary["results"] == [] and summary["tumours"] == 0
    assert predict.summary_line(summary, out_dir).startswith("1 images, 0 tumours found in 0 of them, ")
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
    with pytest.raises(ConfigError, match="expected a run folder"):
        detectors.load_detector(str(tmp_path))
    with pytest.raises(DataError, match="no image files"):
        predict.list_images(str(tmp_path))


def test_the_masks_of_the_lgg_layout_are_skipped(tmp_path):
    for name in ("P_1.tif", "P_1_mask.tif", "P_2.tif", "P_2_mask.tif", "lonely_mask.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8), np.uint8))
    images, masks = predict.list_images(str(tmp_path))
    # A "_mask" file with no image of its stem is an image to predict on.
    assert [os.path.basename(p) for p in images] == ["P_1.tif", "P_2.tif", "lonely_mask.png"]
    assert [os.path.basename(p) for p in masks] == ["P_1_mask.tif", "P_2_mask.tif"]


def test_progress_and_the_summary_line(model_dirs, image_folder, tmp_path, capsys):
    cv2.imwrite(str(image_folder / "b_grey_mask.png"), np.zeros((70, 90), np.uint8))
    summary = predict.predict(model_dirs[1], str(image_folder), str(tmp_path / "out"), score_threshold=1.01)
    assert capsys.readouterr().err.splitlines() == ["[1/2] a_colour.tif: 0 tumours", "[2/2] b_grey.png: 0 tumours"]
    line = predict.summary_line(summary, "OUT")
    assert line.startswith("2 images, 0 tumours found in 0 of them, ")
    assert line.endswith(" s; 1 mask files skipped; written to OUT")
    predict.predict(model_dirs[1], str(image_folder), str(tmp_path / "quiet"), score_threshold=1.01, progress=False)
    assert capsys.readouterr().err == ""


def test_an_overlay_says_when_no_tumour_was_found():
    image = np.full((64, 64, 3), 80, np.uint8)
    none = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
            "masks": np.zeros((0, 64, 64), np.uint8)}
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 10:30, 20:40] = 1
    one = {"boxes": np.array([[10, 20, 30, 40]], np.float32), "scores": np.array([0.91], np.float32), "masks": mask}
    empty, found = visualize.draw_prediction(image, none, 0.5), visualize.draw_prediction(image, one, 0.5)
    assert empty.shape == found.shape == (512 + visualize.LEGEND_HEIGHT, 512, 3)
    # The legend lines differ ("no tumour found" against "1 tumour"); the picture differs where the contour is.
    legend = slice(512, None)
    assert (empty[legend] != found[legend]).any()
    assert (found[:512] != empty[:512]).any() and (empty[:512] == 80).all()


def test_colour_instances_gives_each_id_its_own_colour():
    ids = np.array([[0, 1], [2, 1]], np.uint8)
    colours = visualize.colour_instances(ids)
    assert colours.shape == (2, 2, 3) and not colours[0, 0].any()
    assert (colours[0, 1] == colours[1, 1]).all() and (colours[0, 1] != colours[1, 0]).any()


def test_a_corrupt_file_stops_predict_naming_it_with_what_was_done_written(model_dirs, image_folder, tmp_path):
    (image_folder / "c_broken.png").write_bytes(b"not a png")
    out_dir = str(tmp_path / "stopped")
    with pytest.raises(DataError, match="c_broken.png.*the 2 images before it are written to"):
        predict.predict(model_dirs[1], str(image_folder), out_dir, score_threshold=1.01)
    results, names = read_outputs(out_dir)
    assert names == {"1": "a_colour.tif", "2": "b_grey.png"} and results == []


def test_skip_bad_goes_on_and_names_every_skipped_file(model_dirs, image_folder, tmp_path):
    (image_folder / "c_broken.png").write_bytes(b"not a png")
    (image_folder / "d_empty.png").write_bytes(b"")
    out_dir = str(tmp_path / "skipped")
    summary = predict.predict(model_dirs[1], str(image_folder), out_dir, score_threshold=1.01, skip_bad=True,
                              progress=False)
    assert summary["images"] == 2 and [os.path.basename(f) for f, _ in summary["skipped"]] == ["c_broken.png",
                                                                                            "d_empty.png"]
    with open(os.path.join(out_dir, "skipped.json")) as f:
        assert [os.path.basename(entry["file"]) for entry in json.load(f)] == ["c_broken.png", "d_empty.png"]
    lines = predict.summary_line(summary, out_dir).splitlines()
    assert "2 unreadable files skipped" in lines[0] and lines[1].startswith("skipped ") and "c_broken.png" in lines[1]


def test_an_image_above_the_input_limit_is_refused_with_a_clear_error(tmp_path):
    from mrcnn_tf import inference

    model = build_model(tiny_config(inference={"max_input_pixels": 60 * 60}))
    with pytest.raises(DataError, match="big.png: 61x60 pixels is more than the 3600 one call may hold"):
        inference.detect(model, np.zeros((61, 60, 3), np.uint8), "big.png")
    assert inference.detect(model, np.zeros((60, 60, 3), np.uint8))["masks"].shape[1:] == (60, 60)
    serve = tf.saved_model.load(export.export_model(model, str(tmp_path))).signatures[export.SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError, match="input too large: one call may hold at most 3600"):
        serve(images=tf.zeros([2, 40, 50, 3], tf.uint8))  # 2 x 40 x 50 = 4000 pixels
    assert serve(images=tf.zeros([1, 60, 60, 3], tf.uint8))["num_detections"].shape == (1,)
