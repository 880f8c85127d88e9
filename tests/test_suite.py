"""The test suite's own set-up (tests/conftest.py): the slow files it starts first exist, and go first in order."""
import os
import types

import conftest

PROJECT = os.path.dirname(conftest.TESTS)


def test_every_slow_file_listed_exists_once():
    missing = [name for name in conftest.SLOW_FILES if not os.path.isfile(os.path.join(conftest.TESTS, name))]
    assert not missing, f"renamed or removed: {missing}; update conftest.SLOW_FILES"
    assert len(set(conftest.SLOW_FILES)) == len(conftest.SLOW_FILES)


def test_slow_files_are_collected_first_in_their_order_and_the_rest_keep_theirs():
    def item(name, test):
        return types.SimpleNamespace(path=os.path.join(conftest.TESTS, name), name=test)

    slowest, second = conftest.SLOW_FILES[0], conftest.SLOW_FILES[1]
    items = [item("ops/test_boxes.py", "a"), item(second, "b"), item("data/test_lgg.py", "c"),
             item(slowest, "d"), item(second, "e"), item("ops/test_boxes.py", "f")]
    conftest.pytest_collection_modifyitems(items)
    assert [i.name for i in items] == ["d", "b", "e", "a", "c", "f"]


def test_this_session_collected_the_slow_files_first(request):
    """Whatever subset of the suite runs, the collected files come in ``SLOW_FILES``' order, the others after."""
    ranks = [conftest.collection_rank(item.path) for item in request.session.items]
    assert ranks == sorted(ranks)


def test_make_test_keeps_the_collection_order():
    with open(os.path.join(PROJECT, "Makefile")) as makefile:
        command = next(line for line in makefile if "-m pytest" in line)
    assert "--dist loadfile" in command and "--no-loadscope-reorder" in command, command
