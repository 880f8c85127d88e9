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

test: $(VENV)/.installed
	$(PYTHON) -m pytest tests
