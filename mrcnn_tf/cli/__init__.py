"""The command-line interfaces: flags in, package calls out. Installed as console scripts (``pyproject.toml``):

* ``mrcnn-train`` (:mod:`mrcnn_tf.cli.train`, also ``python train.py``): train, or resume, a run folder;
* ``mrcnn-evaluate`` (:mod:`mrcnn_tf.cli.evaluate`, also ``python evaluate.py``): reports;
* ``mrcnn-predict`` (:mod:`mrcnn_tf.cli.predict`): masks, overlays and COCO results for images;
* ``mrcnn-export`` (:mod:`mrcnn_tf.cli.export`): a run as a SavedModel for serving.

Each sets ``TF_CPP_MIN_LOG_LEVEL`` before TensorFlow loads and imports the package's heavy modules only once its
flags parsed, so that ``--help`` answers at once.
"""
