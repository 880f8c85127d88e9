"""Export a training run as a SavedModel for serving (``mrcnn_tf.export`` documents its signature).

    mrcnn-export --run runs/lgg --out exports/lgg
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mrcnn_tf.errors import run_command  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (config.json + model.weights.h5)")
    p.add_argument("--out", required=True, help="export folder to write")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def run():
        from mrcnn_tf import export

        return export.export_run(args.run, args.out)

    return run_command(run, lambda path: f"SavedModel written to {path}")


if __name__ == "__main__":
    sys.exit(main())
