"""mrcnn_tf.detectors: one image in, detections out, from a model in process, a run folder or an export; and a
served model scored as it is served (``evaluation.commands.evaluate_run`` on an export folder)."""
import json
import os

import pytest
from conftest import ONE_TUMOUR_ONE_EMPTY, TWO_PATIENTS, tiny_config, write_lgg_folder

from mrcnn_tf import detectors, export, model_settings, runs
from mrcnn_tf.data import splits
from mrcnn_tf.errors import ConfigError, DataError
from mrcnn_tf.evaluation import commands
from mrcnn_tf.model import build_model


@pytest.fixture(scope="module")
def run_with_export(tmp_path_factory):
    """A run folder (config, final weights, splits), its export in ``RUN/export/1``, and an LGG-layout folder
    of 2 patients x 2 slices."""
    root = tmp_path_factory.mktemp("detectors")
    data = root / "data"
    write_lgg_folder(str(data), TWO_PATIENTS, ONE_TUMOUR_ONE_EMPTY)
    run = str(root / "run")
    os.makedirs(run)
    model = build_model(tiny_config())
    runs.write_config(run, model.config)
    runs.save_weights(model, runs.path(run, runs.WEIGHTS_FILE))
    splits.write_splits({"ratios": [0.5, 0, 0.5], "seed": 0, "by": "patient", "train": ["TCGA_AA_0001"],
                         "val": [], "test": ["TCGA_AA_0002"]}, runs.path(run, runs.SPLITS_FILE))
    version_dir = export.export_run(run, runs.path(run, runs.EXPORT_DIR))
    return run, version_dir, str(data), model


def test_the_model_drops_boxes_below_the_configured_size(run_with_export):
    model = run_with_export[3]
    assert model.detection_layer.min_size == model.config.inference.min_box_size == 0.01


def test_export_version_dir_finds_the_highest_version(tmp_path):
    for version in ("1", "10", "2", "notes"):
        (tmp_path / version).mkdir()
    for version in ("1", "2"):
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    assert model_settings.export_version_dir(str(tmp_path)) == str(tmp_path / "2")  # 10/ holds no SavedModel
    assert model_settings.export_version_dir(str(tmp_path / "1")) == str(tmp_path / "1")
    assert model_settings.export_version_dir(str(tmp_path / "notes")) is None


def test_load_detector_names_what_it_expected(tmp_path, run_with_export):
    with pytest.raises(ConfigError, match="expected a run folder .* or an export folder"):
        detectors.load_detector(str(tmp_path))
    with pytest.raises(ConfigError, match="an export holds the weights it was exported with"):
        detectors.load_detector(run_with_export[1], weights="best")
    with pytest.raises(ConfigError, match="mrcnn-export --tta"):
        detectors.load_detector(run_with_export[1], flip_tta=True)


def test_a_run_is_scored_with_the_test_time_flip_when_asked(run_with_export, tmp_path, monkeypatch):
    run, _, data, _ = run_with_export
    built = []
    load_run = runs.load_run
    monkeypatch.setattr(runs, "load_run", lambda *args, **kwargs: built.append(load_run(*args, **kwargs)) or built[-1])
    report = commands.evaluate_run(run, data, "test", str(tmp_path / "flip"), score_threshold=0.0, flip_tta=True)
    assert built[-1].config.inference.flip_tta and report["source"]["flip_tta"] is True
    commands.evaluate_run(run, data, "test", str(tmp_path / "plain"), score_threshold=0.0)
    assert not built[-1].config.inference.flip_tta


def test_an_export_is_scored_as_the_run_is(run_with_export, tmp_path):
    # Its folder inside the run (RUN/export/1) finds the run's splits; the export base folder too.
    run, version_dir, data, _ = run_with_export
    figures = {}
    for name, model_dir in (("run", run), ("version", version_dir), ("base", os.path.dirname(version_dir))):
        figures[name] = commands.evaluate_run(model_dir, data, "test", str(tmp_path / name), score_threshold=0.0)
    for name in ("version", "base"):
        assert figures[name]["n_images"] == figures["run"]["n_images"] == 2
        assert figures[name]["image_level"] == figures["run"]["image_level"]
        for key in ("box_ap50", "mask_ap50"):
            assert figures[name]["ap"][key] == pytest.approx(figures["run"]["ap"][key], abs=1e-6)
    assert json.loads((tmp_path / "version" / "report.json").read_text())["source"]["model"] == version_dir


def test_an_export_outside_a_run_needs_a_splits_file_or_all(run_with_export, tmp_path):
    run, version_dir, data, model = run_with_export
    alone = export.export_model(model, str(tmp_path / "alone"))
    with pytest.raises(DataError, match="no splits file for --split test; evaluate with --split all, or give"):
        commands.evaluate_run(alone, data, "test", str(tmp_path / "r1"))
    given = commands.evaluate_run(alone, data, "test", str(tmp_path / "r2"),
                                  splits_file=runs.path(run, runs.SPLITS_FILE))
    assert given["n_images"] == 2
    assert commands.evaluate_run(alone, data, "all", str(tmp_path / "r3"))["n_images"] == 4
