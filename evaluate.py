"""Evaluate from a clone: the same command as ``mrcnn-evaluate`` (``mrcnn_tf.cli.evaluate``; ``--help`` for flags).

    python evaluate.py --model runs/lgg --data DATA/lgg --split test --out reports/lgg_test
"""
import sys

from mrcnn_tf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
