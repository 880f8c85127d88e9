"""mrcnn_tf.cli.export (``mrcnn-export``): flags to ``export.export_run``, its outcome as a message and an exit code
(the SavedModel itself: tests/test_export.py)."""
import os

import pytest
from conftest import heavy_modules_after

from mrcnn_tf import export
from mrcnn_tf.cli import export as export_cli


def test_main_exports_the_run_and_names_the_folder(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(export, "export_run", lambda *args: calls.append(args) or os.path.join(args[1], "3"))
    assert export_cli.main(["--run", "runs/lgg", "--out", "exports/lgg"]) == 0
    assert export_cli.main(["--run", "r", "--out", "e", "--weights", "best", "--version", "7", "--score-threshold",
                            "0.5", "--nms-iou", "0.4", "--max-detections", "5", "--tta", "-q"]) == 0
    assert calls == [("runs/lgg", "exports/lgg", "final", None, None, None, None, None, None),
                     ("r", "e", "best", 7, 0.5, 0.4, 5, None, True)]
    assert capsys.readouterr().out == f"SavedModel written to {os.path.join('exports/lgg', '3')}\n"  # -q: silent


@pytest.mark.parametrize("flags", [["--version", "0"], ["--version", "x"], ["--score-threshold", "1.5"],
                                   ["--max-detections", "0"], ["-q", "-v"]])
def test_bad_values_are_usage_errors(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        export_cli.main(["--run", "r", "--out", "o", *flags])
    assert stop.value.code == 2 and "usage: " in capsys.readouterr().err


def test_a_run_without_weights_exits_with_code_2_naming_the_file(tmp_path, capsys):
    code = export_cli.main(["--run", str(tmp_path), "--out", str(tmp_path / "export")])
    error = capsys.readouterr().err
    assert code == 2 and os.path.join(str(tmp_path), "model.weights.h5") in error and "Traceback" not in error
    assert not os.path.exists(tmp_path / "export")


@pytest.mark.parametrize("flags", [["--run", "r"], ["--out", "o"]])
def test_a_missing_flag_is_a_usage_error(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        export_cli.main(flags)
    assert stop.value.code == 2 and "the following arguments are required" in capsys.readouterr().err


def test_parsing_the_flags_loads_no_tensorflow():
    assert heavy_modules_after("from mrcnn_tf.cli import export; export.parse_args(['--run', 'r', '--out', 'o'])") == []
