#!/usr/bin/env bash
# The package as a user installs it: `pip install .` from this checkout into a fresh virtual environment, then,
# from a folder outside the checkout, the console scripts and the import. Leaves nothing behind.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$repo"
cd "$work"
for command in mrcnn-train mrcnn-evaluate mrcnn-predict mrcnn-export; do
  "$work/venv/bin/$command" --help > /dev/null
  echo "ok: $command --help"
done
"$work/venv/bin/python" - <<'PY'
import mrcnn_tf
from mrcnn_tf.model import build_model  # imports TensorFlow and Keras as installed
from mrcnn_tf.config import Config

assert "site-packages" in mrcnn_tf.__file__, mrcnn_tf.__file__
assert build_model and Config.from_preset("best").train.lr_schedule == "cosine"
print("ok: import mrcnn_tf from", mrcnn_tf.__file__)
PY
