"""Export a training run as a SavedModel for TensorFlow Serving (``mrcnn_tf.export`` documents the signatures).

    mrcnn-export --run runs/lgg --out exports/lgg                    # exports/lgg/1/ (then 2/, 3/, ...)
    mrcnn-export --run runs/lgg --out exports/lgg --weights best --score-threshold 0.5 --version 7
"""
import argparse
import sys

from mrcnn_tf.cli import logs
from mrcnn_tf.cli.arguments import fraction, positive_int
from mrcnn_tf.errors import run_command


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (config.json + its weights)")
    p.add_argument("--out", required=True, help="export base folder: the export goes to OUT/<version>/")
    p.add_argument("--version", type=positive_int, help="the version folder's number (default: the next free one)")
    p.add_argument("--weights", default="final",
                   help="final (the run's final weights, default; 'last' is the same), best (by validation mask "
                        "AP50) or a .weights.h5 path")
    p.add_argument("--score-threshold", type=fraction,
                   help="detections scoring below it are dropped (default: the run's, 0.05)")
    p.add_argument("--nms-iou", type=fraction, help="per-class NMS overlap (default: the run's, 0.5)")
    p.add_argument("--max-detections", type=positive_int, help="detections per image at most (default: the run's)")
    p.add_argument("--max-input-pixels", type=positive_int,
                   help="a call holding more pixels (batch x height x width) is refused (default: the run's, "
                        "2048 x 2048)")
    p.add_argument("--tta", action="store_true", default=None,
                   help="bake in the test-time flip: each image's detections averaged with its mirror image's "
                        "(twice the inference time)")
    logs.add_flags(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    level = logs.configure(args)

    def run():
        from mrcnn_tf import export

        return export.export_run(args.run, args.out, args.weights, args.version, args.score_threshold,
                                 args.nms_iou, args.max_detections, args.max_input_pixels, args.tta)

    return run_command(run, lambda path: f"SavedModel written to {path}", quiet=level == logs.QUIET)


if __name__ == "__main__":
    sys.exit(main())
