# Set-up is part of every target: the virtual environment is created when missing, with the pinned packages of
# requirements-test.txt (requirements.txt and the test tools) and the package itself in editable mode, which puts
# the console scripts mrcnn-train, -evaluate, -predict and -export in .venv/bin.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: demo test

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements-test.txt
	$(VENV)/bin/pip install --no-deps -e .
	touch $@

# A short training run on the bundled LGG sample; writes runs/demo with weights and prediction overlays.
demo: $(VENV)/.installed
	$(VENV)/bin/mrcnn-train --data datasets/sample --out runs/demo --epochs 2 --steps-per-epoch 25 --predictions 8

# Two pytest workers (pytest-xdist), one test file each at a time: most of a test's time is tracing TF graphs in
# one Python thread, so two workers use both cores. Files go out in collection order, where tests/conftest.py puts
# the slowest first (xdist's default reorder, by test count, would start them last). TEST_WORKERS=0 runs the tests
# in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests
