"""Export a model for TensorFlow Serving, reload it as a server would, and time both signatures; one JSON line.

    python benchmarks/serving.py [--run RUN_DIR] [--steps 20] [--score-threshold 0.05]

Without ``--run`` a randomly initialised model of the default config is exported (its untrained scores put the
full ``max_detections`` through the mask head, the worst case). Input: a 256x256 uint8 slice with one bright
ellipse, as an array (``serving_default``) and as PNG bytes (``serving_encoded``). Reports the export's size on
disk against the model's float32 weights, the median milliseconds per call of each signature on one slice after
two warm-up calls, and the size of the JSON response TF Serving's REST API would send for it (``{"outputs":
...}`` of the output tensors as nested lists). Everything but the JSON line goes to stderr.
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

from mrcnn_tf import export, runs  # noqa: E402
from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.model import build_model  # noqa: E402


def folder_megabytes(path):
    """The size of the files under ``path``, in MiB."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2**20


def test_slice():
    """A 256x256 RGB uint8 slice with one bright ellipse."""
    image = np.full((256, 256, 3), 40, np.uint8)
    cv2.ellipse(image, (128, 120), (40, 28), 0, 0, 360, (200, 200, 200), -1)
    return image


def median_ms(call, steps):
    """Median milliseconds of ``call()`` (results fetched) after two warm-up calls, and its last result."""
    for _ in range(2):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        result = {key: value.numpy() for key, value in call().items()}
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), result


def rest_response_bytes(result):
    """The bytes of TF Serving's REST response (``{"outputs": {name: nested list}}``) for ``result``."""
    return len(json.dumps({"outputs": {key: value.tolist() for key, value in result.items()}}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="run folder to export (default: an untrained default model)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--score-threshold", type=float, help="baked into the export (default: the run's, 0.05)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "export")
        if args.run:
            version_dir = export.export_run(args.run, base, score_threshold=args.score_threshold)
            weights_mb = os.path.getsize(runs.weights_path(args.run, "last")) / 2**20
        else:
            config = Config()
            if args.score_threshold is not None:
                config = config.replace(inference={"score_threshold": args.score_threshold})
            model = build_model(config)
            weights_mb = sum(int(np.prod(v.shape)) for v in model.variables) * 4 / 2**20
            version_dir = export.export_model(model, base)
        size = folder_megabytes(version_dir)
        signatures = tf.saved_model.load(version_dir).signatures
        image = test_slice()
        png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
        array_ms, result = median_ms(lambda: signatures[export.SIGNATURE](images=tf.constant(image[None])),
                                     args.steps)
        encoded_ms, _ = median_ms(lambda: signatures[export.ENCODED_SIGNATURE](image_bytes=tf.constant([png])),
                                  args.steps)
    print(json.dumps({
        "export_mb": round(size, 1), "weights_mb": round(weights_mb, 1),
        "export_to_weights": round(size / weights_mb, 3),
        "serving_default_ms_per_slice": round(array_ms, 1), "serving_encoded_ms_per_slice": round(encoded_ms, 1),
        "response_bytes": rest_response_bytes(result), "num_detections": int(result["num_detections"][0]),
        "run": args.run or "untrained",
    }))


if __name__ == "__main__":
    main()
