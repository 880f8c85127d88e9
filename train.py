"""Train Mask R-CNN from a clone: the same command as ``mrcnn-train`` (``mrcnn_tf.cli.train``; ``--help`` for flags).

    python train.py --data DATA/lgg --out runs/lgg
"""
import sys

from mrcnn_tf.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
