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
    summary = {"images": 2, "images_with_tumour": 1, "tumours": 3, "seconds": 1.25, "skipped_masks": 0, "results": []}
    monkeypatch.setattr(predict, "predict", lambda *args, **kwargs: calls.append((args, kwargs)) or summary)
    return calls


def test_main_predicts_with_the_flags_and_says_what_it_did(predicted, capsys):
    assert predict_cli.main(["--model", "runs/x", "--images", "scans", "--out", "out"]) == 0
    assert predict_cli.main(["--model", "runs/x", "--images", "a.png", "--out", "o", "--score-threshold", "0.2"]) == 0
    assert [args for args, _ in predicted] == [("runs/x", "scans", "out", 0.5), ("runs/x", "a.png", "o", 0.2)]
    assert all(kwargs == {"progress": True, "skip_bad": False, "flip_tta": False} for _, kwargs in predicted)
    assert capsys.readouterr().out.splitlines() == [
        "2 images, 3 tumours found in 1 of them, 1.2 s; written to out",
        "2 images, 3 tumours found in 1 of them, 1.2 s; written to o"]


def test_quiet_prints_nothing_and_shows_no_progress(predicted, capsys):
    assert predict_cli.main(["--model", "m", "--images", "i", "--out", "o", "-q"]) == 0
    assert predicted[0][1] == {"progress": False, "skip_bad": False, "flip_tta": False}
    assert capsys.readouterr().out == ""
    assert predict_cli.main(["--model", "m", "--images", "i", "--out", "o", "-q", "--tta"]) == 0
    assert predicted[1][1]["flip_tta"] is True


def test_a_folder_that_is_no_model_exits_with_code_2_naming_it(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"")  # an image file, so that the model folder is what is looked at
    code = predict_cli.main(["--model", str(tmp_path), "--images", str(tmp_path), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith(f"error: {tmp_path}: expected a run folder") and "Traceback" not in error


@pytest.mark.parametrize("flags", [["--images", "a.png", "--out", "o"], ["--model", "m", "--out", "o"],
                                   ["--model", "m", "--images", "a.png", "--out", "o", "--score-threshold", "high"]])
def test_a_missing_or_bad_flag_is_a_usage_error(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        predict_cli.main(flags)
    assert stop.value.code == 2 and "usage: " in capsys.readouterr().err


def test_parsing_the_flags_loads_no_tensorflow():
    code = "from mrcnn_tf.cli import predict; predict.parse_args(['--model', 'm', '--images', 'i', '--out', 'o'])"
    assert heavy_modules_after(code) == []
