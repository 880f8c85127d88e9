"""mrcnn_tf.cli.predict (``mrcnn-predict``): flags to ``predict.predict``, its outcome as a message and an exit code
(what ``predict.predict`` writes: tests/test_predict.py)."""
import pytest
from conftest import heavy_modules_after

from mrcnn_tf import predict
from mrcnn_tf.cli import predict as predict_cli


@pytest.fixture
def predicted(monkeypatch):
    """Replaces ``predict.predict`` by one that finds 3 detections; the list collects its arguments."""
    calls = []
    monkeypatch.setattr(predict, "predict", lambda *args: calls.append(args) or [{}] * 3)
    return calls


def test_main_predicts_with_the_flags_and_says_how_many_it_wrote(predicted, capsys):
    assert predict_cli.main(["--model", "runs/x", "--images", "scans", "--out", "out"]) == 0
    assert predict_cli.main(["--model", "runs/x", "--images", "a.png", "--out", "o", "--score-threshold", "0.2"]) == 0
    assert predicted == [("runs/x", "scans", "out", 0.5), ("runs/x", "a.png", "o", 0.2)]  # 0.5 by default
    assert capsys.readouterr().out.splitlines() == ["3 detections written to out", "3 detections written to o"]


def test_a_folder_that_is_no_model_exits_with_code_2_naming_it(tmp_path, capsys):
    code = predict_cli.main(["--model", str(tmp_path), "--images", str(tmp_path), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith(f"error: {tmp_path}: expected an export folder") and "Traceback" not in error


@pytest.mark.parametrize("flags", [["--images", "a.png", "--out", "o"], ["--model", "m", "--out", "o"],
                                   ["--model", "m", "--images", "a.png", "--out", "o", "--score-threshold", "high"]])
def test_a_missing_or_bad_flag_is_a_usage_error(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        predict_cli.main(flags)
    assert stop.value.code == 2 and "usage: " in capsys.readouterr().err


def test_parsing_the_flags_loads_no_tensorflow():
    code = "from mrcnn_tf.cli import predict; predict.parse_args(['--model', 'm', '--images', 'i', '--out', 'o'])"
    assert heavy_modules_after(code) == []
