"""Tumour masks, overlays and COCO results for images, from an export folder or a run folder.

    mrcnn-predict --model runs/lgg/export --images SLICES_OR_FILE --out predictions/ [--score-threshold 0.5]
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mrcnn_tf.errors import run_command  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="export folder (mrcnn-export) or training run folder")
    p.add_argument("--images", required=True, help="an image file, or a folder of images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="write only detections scoring at least this (default 0.5)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def run():
        from mrcnn_tf import predict

        return predict.predict(args.model, args.images, args.out, args.score_threshold)

    return run_command(run, lambda results: f"{len(results)} detections written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
