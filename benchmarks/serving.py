"""Export a model as a SavedModel, reload it as TF Serving would, and time it; print one JSON line.

    python benchmarks/serving.py [--run RUN_DIR] [--steps 20]

Without ``--run`` a randomly initialised model of the default config is exported (its untrained scores put the
full ``max_detections`` through the mask head, the worst case). Input: a 256x256 uint8 slice with one bright
ellipse. Reports the export's size on disk and the median milliseconds per call of ``serving_default`` on one
slice after two warm-up calls. Everything but the JSON line goes to stderr.
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrcnn_tf import export  # noqa: E402
from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.model import build_model  # noqa: E402


def folder_megabytes(path):
    """The size of the files under ``path``, in MiB."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="run folder to export (default: an untrained default model)")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "export")
        if args.run:
            export.export_run(args.run, out)
        else:
            export.export_model(build_model(Config()), out)
        size = folder_megabytes(out)
        serve = tf.saved_model.load(out).signatures[export.SIGNATURE]
        image = np.full((1, 256, 256, 3), 40, np.uint8)
        cv2.ellipse(image[0], (128, 120), (40, 28), 0, 0, 360, (200, 200, 200), -1)
        images = tf.constant(image)
        for _ in range(2):
            serve(images=images)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            result = serve(images=images)
            result["masks"].numpy()
            times.append(time.perf_counter() - start)
    print(json.dumps({"export_mb": round(size, 1), "serving_ms_per_slice": round(1000 * float(np.median(times)), 1),
                      "num_detections": int(result["num_detections"][0]), "run": args.run or "untrained"}))


if __name__ == "__main__":
    main()
