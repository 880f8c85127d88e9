"""A detector: one image in, its detections out, whatever holds the model (in process, a run folder, an export).

Evaluation and predict take a detector, so that a served model is scored and used exactly as it is served. A
detector is a function ``[H, W, 3]`` uint8 RGB -> dict of NumPy arrays for the ``n`` detections kept: ``boxes``
``[n, 4]`` float32 ``[y1, x1, y2, x2]`` in the image's pixels, ``scores`` ``[n]``, ``classes`` ``[n]`` int32,
``masks`` ``[n, H, W]`` uint8 (0/1).

Model folders (:func:`load_detector`):

* a run folder (``mrcnn_tf.runs``: ``config.json``), with its ``final`` or ``best`` weights;
* an export version folder (``BASE/<version>/saved_model.pb``, ``mrcnn_tf.export``);
* an export base folder (``BASE/``): its highest integer version, as TensorFlow Serving picks it.
"""
import os

from mrcnn_tf import inference, runs
from mrcnn_tf.errors import ConfigError
from mrcnn_tf.model_settings import SAVED_MODEL_FILE, export_version_dir
SIGNATURE = "serving_default"
OUTPUT_KEYS = ("boxes", "scores", "classes", "masks")


def model_detector(model):
    """The detector of an in-process :class:`~mrcnn_tf.model.MaskRCNN` (``inference.detect``)."""
    return lambda image: inference.detect(model, image)


def export_detector(version_dir):
    """The detector of the SavedModel in ``version_dir`` (its ``serving_default`` signature); the package's
    model code is not used, only TensorFlow."""
    import tensorflow as tf

    serve = tf.saved_model.load(version_dir).signatures[SIGNATURE]

    def detect(image):
        outputs = serve(images=tf.constant(image[None]))
        count = int(outputs["num_detections"][0])
        return {key: outputs[key][0, :count].numpy() for key in OUTPUT_KEYS}

    return detect


def load_detector(model_dir, weights="final", flip_tta=False):
    """The detector of the run or export folder ``model_dir`` (see the module doc). ``weights`` (``"final"`` or
    ``"best"``) picks a run's weights; an export holds one set. ``flip_tta``: a run's model with the test-time
    flip or without it, whatever its configuration says (``config.inference.flip_tta``); an export has it or not
    as it was exported. ConfigError naming
    ``model_dir`` otherwise."""
    version_dir = export_version_dir(model_dir)
    if version_dir is not None:
        if weights != "final":
            raise ConfigError(f"{model_dir}: an export holds the weights it was exported with; --weights {weights} "
                              "is for run folders")
        if flip_tta:
            raise ConfigError(f"{model_dir}: an export flips at test time or not as it was exported "
                              "(mrcnn-export --tta); --tta is for run folders")
        return export_detector(version_dir)
    if os.path.isfile(runs.path(model_dir, runs.CONFIG_FILE)):
        return model_detector(runs.load_run(model_dir, weights, inference={"flip_tta": bool(flip_tta)}))
    raise ConfigError(f"{model_dir}: expected a run folder (with {runs.CONFIG_FILE}) or an export folder (with "
                      f"{SAVED_MODEL_FILE}, or version folders 1/, 2/, ... holding one)")
