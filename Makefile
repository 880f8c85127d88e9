# Set-up is part of every target: the virtual environment is created from requirements.txt when missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: demo test

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt
	touch $@

# A short training run on the bundled LGG sample; writes runs/demo with weights and prediction overlays.
demo: $(VENV)/.installed
	$(PYTHON) train.py --data datasets/sample --out runs/demo --epochs 2 --steps-per-epoch 25 --predictions 8

# Two pytest workers (pytest-xdist), one test file each at a time: most of a test's time is tracing TF graphs in
# one Python thread, so two workers use both cores. Files go out in collection order, where tests/conftest.py puts
# the slowest first (xdist's default reorder, by test count, would start them last). TEST_WORKERS=0 runs the tests
# in one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests
