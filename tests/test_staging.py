"""Tests for mrcnn_tf/staging.py: output files appear together, or none of them and no temporary file."""
import os

import pytest

from mrcnn_tf import staging


def test_write_texts_writes_every_file_and_returns_their_paths(tmp_path):
    out = tmp_path / "new" / "folder"
    paths = staging.write_texts(str(out), {"a.json": "{}", "a.md": "# A\n"})
    assert paths == [str(out / "a.json"), str(out / "a.md")]
    assert (out / "a.json").read_text() == "{}" and (out / "a.md").read_text() == "# A\n"
    assert sorted(os.listdir(out)) == ["a.json", "a.md"]  # no temporary file left


def test_a_failure_leaves_none_of_the_files_and_no_temporary_one(tmp_path):
    (tmp_path / "a.md").write_text("the old one")
    with pytest.raises(FileNotFoundError):
        staging.write_texts(str(tmp_path), {"a.json": "{}", "a.md": "new", "no_such_folder/b.md": "x"})
    assert sorted(os.listdir(tmp_path)) == ["a.md"] and (tmp_path / "a.md").read_text() == "the old one"


def test_staged_files_appear_on_success_only(tmp_path):
    with staging.StagedFiles(str(tmp_path)) as stage:
        with open(stage.path("x.txt"), "w") as f:
            f.write("x")
        assert os.listdir(tmp_path) != ["x.txt"]  # not under its name yet
    assert os.listdir(tmp_path) == ["x.txt"]
    with pytest.raises(RuntimeError), staging.StagedFiles(str(tmp_path)) as stage:
        with open(stage.path("y.txt"), "w") as f:
            f.write("y")
        raise RuntimeError("stopped")
    assert os.listdir(tmp_path) == ["x.txt"]
