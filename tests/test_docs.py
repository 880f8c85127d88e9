"""The README and docs/ stay true of the code: their links resolve, and every flag they show a command with is one
that command takes."""
import contextlib
import glob
import io
import os
import re

import pytest
from conftest import load_benchmark

from mrcnn_tf.cli import evaluate, export, predict, train

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
GUIDES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINKED = GUIDES + ["benchmarks/RESULTS.md"]

# The commands the guides show, each with how to read its flags off its --help.
COMMANDS = {
    "mrcnn-train": train.main, "train.py": train.main, "mrcnn-evaluate": evaluate.main, "evaluate.py": evaluate.main,
    "mrcnn-predict": predict.main, "mrcnn-export": export.main,
    "benchmarks/accuracy.py": lambda argv: load_benchmark("accuracy").main(argv),
}
COMMAND = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(c) for c in sorted(COMMANDS, key=len, reverse=True))
                     + r")(?![\w-])")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def anchors(text):
    """GitHub's anchors of a markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def command_lines(text):
    """The code a page shows: each line of its fenced blocks and each inline code span (one a line break wraps
    counts as one line)."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.S | re.M)
    spans = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose) if span.count("\n") <= 1]
    return [line for block in blocks for line in block.splitlines()] + spans


def shown_flags(text):
    """``(command, flag)`` for each flag written after a command, up to the next command, comment or separator."""
    found = set()
    for line in command_lines(text):
        for segment in re.split(r";|&&|\|\|", re.split(r"\s#", line)[0]):
            parts = COMMAND.split(segment)  # text, command, its arguments, command, its arguments, ...
            for command, arguments in zip(parts[1::2], parts[2::2]):
                found.update((command, flag) for flag in FLAG.findall(arguments))
    return found


_HELP = {}


def flags_of(command):
    """The flags ``command`` takes, read off its ``--help``."""
    if command not in _HELP:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            COMMANDS[command](["--help"])
        _HELP[command] = set(FLAG.findall(out.getvalue()))
    return _HELP[command]


@pytest.mark.parametrize("page", LINKED)
def test_every_link_of_a_page_resolves_to_a_file_and_heading(page):
    text, folder = read(page), os.path.dirname(os.path.join(ROOT, page))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        file = os.path.normpath(os.path.join(folder, path)) if path else os.path.join(ROOT, page)
        if not os.path.exists(file):
            broken.append(f"{target}: no {os.path.relpath(file, ROOT)}")
        elif anchor and file.endswith(".md") and anchor not in anchors(read(os.path.relpath(file, ROOT))):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{page}: " + "; ".join(broken)


@pytest.mark.parametrize("page", GUIDES)
def test_every_flag_a_guide_shows_a_command_with_is_one_it_takes(page):
    shown = shown_flags(read(page))
    unknown = sorted(f"{command} {flag}" for command, flag in shown if flag not in flags_of(command))
    assert not unknown, f"{page} shows flags the command does not take: {', '.join(unknown)}"


def test_the_checks_find_what_they_look_for():
    text = ("```bash\nmrcnn-train --data D --out R --lr 0.1   # then --not-this\nmrcnn-evaluate --model R\n```\n"
            "Or `python evaluate.py --tta --weights best` and `mrcnn-export --run R && mrcnn-predict --images I`,\n"
            "or `mrcnn-evaluate --compare A\nB --out C` wrapped.\n"
            "## A heading, with: punctuation\n")
    assert shown_flags(text) == {("mrcnn-train", "--data"), ("mrcnn-train", "--out"), ("mrcnn-train", "--lr"),
                                 ("mrcnn-evaluate", "--model"), ("evaluate.py", "--tta"),
                                 ("evaluate.py", "--weights"), ("mrcnn-export", "--run"),
                                 ("mrcnn-predict", "--images"), ("mrcnn-evaluate", "--compare"),
                                 ("mrcnn-evaluate", "--out")}
    assert "a-heading-with-punctuation" in anchors(text)
    assert {"--preset", "--minutes", "--optimizer"} <= flags_of("mrcnn-train")
    assert "--no-such-flag" not in flags_of("mrcnn-train")
