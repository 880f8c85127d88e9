"""Detection on images of any size: resize to the network input, run the model, map results back.

``serving_fn`` is the one implementation of this, used in process by :func:`detect` and baked into the exported
SavedModel (``mrcnn_tf.export``). Boxes come back in the pixels of the image given (``[y1, x1, y2, x2]``, see
``ops.boxes``) and masks are pasted at its full size.
"""
import weakref

import numpy as np
import tensorflow as tf

from mrcnn_tf.data.instances import to_rgb
from mrcnn_tf.errors import DataError
from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops import masks as mask_ops

IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
_COMPILED = weakref.WeakKeyDictionary()


def serving_fn(model, xla_features=False):
    """The serving function of ``model``: uint8 ``images`` ``[B, H, W, 3]`` -> dict of outputs (documented in
    ``mrcnn_tf.export``). ``xla_features``: backbone + FPN and RPN head compiled by XLA (in process
    only: the exported SavedModel is XLA-free, since TF Serving's CPU build does not compile XLA by default)."""
    config = model.config
    size = config.image_size

    limit = config.inference.max_input_pixels

    def serve(images):
        # A loaded signature checks the dtype of its input but not its rank: check it here, at run time.
        images = tf.ensure_shape(images, IMAGES_SPEC.shape, name="check_images_shape")
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        pixels = tf.reduce_prod(tf.cast(tf.shape(images)[:3], tf.int64))  # batch x height x width
        small_enough = tf.debugging.assert_less_equal(
            pixels, tf.constant(limit, tf.int64),
            message=f"input too large: one call may hold at most {limit} pixels (batch x height x width; "
                    "max_input_pixels in export.json)")
        with tf.control_dependencies([small_enough]):
            images = tf.identity(images)
        resized = tf.image.resize(tf.cast(images, tf.float32), (size, size), antialias=False)  # [B, S, S, 3]
        outputs = model(tf.cast(tf.round(resized), tf.uint8), training=False, xla_features=xla_features)
        valid = tf.cast(outputs["valid"], tf.float32)  # [B, D]
        scale_y = tf.cast(height, tf.float32) / size
        scale_x = tf.cast(width, tf.float32) / size
        boxes = box_ops.scale_boxes(tf.cast(outputs["boxes"], tf.float32), scale_y, scale_x)  # [B, D, 4]
        mask_probs = tf.cast(outputs["mask_probs"], tf.float32) * valid[..., None, None]  # [B, D, M, M]
        probs = mask_ops.paste_masks(mask_probs, boxes, height, width)  # [B, D, H, W]
        return {
            "boxes": boxes * valid[..., None],
            "scores": tf.cast(outputs["scores"], tf.float32) * valid,
            "classes": tf.cast(outputs["classes"], tf.int32),
            "masks": tf.cast(probs >= config.inference.mask_threshold, tf.uint8),
            "num_detections": tf.cast(outputs["num_detections"], tf.int32),
        }

    return serve


def compiled_serving(model):
    """``serving_fn(model)`` as one cached ``tf.function`` (eager calls would re-run every op from Python), with
    backbone + FPN and RPN head under XLA when ``runtime.xla_features``."""
    if model not in _COMPILED:
        serve = serving_fn(model, model.runtime.xla_features)
        _COMPILED[model] = tf.function(serve, input_signature=[IMAGES_SPEC])
    return _COMPILED[model]


def detect(model, image, source="image"):
    """Detect tumours in one image.

    Args:
      model: a :class:`mrcnn_tf.model.MaskRCNN`.
      image: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` array (RGB).
    Returns:
      dict of NumPy arrays for the ``n`` detections kept: ``boxes`` ``[n, 4]`` float32 in the image's pixels,
      ``scores`` ``[n]`` float32, ``classes`` ``[n]`` int32, ``masks`` ``[n, H, W]`` uint8 (0/1). A tumour-free
      image gives ``n = 0``.
    """
    image = to_rgb(np.asarray(image), source)
    limit = model.config.inference.max_input_pixels
    if image.shape[0] * image.shape[1] > limit:
        raise DataError(f"{source}: {image.shape[0]}x{image.shape[1]} pixels is more than the {limit} one call may "
                        "hold (config.inference.max_input_pixels)")
    outputs = compiled_serving(model)(tf.constant(image[None]))
    count = int(outputs["num_detections"][0])
    return {key: outputs[key][0, :count].numpy() for key in ("boxes", "scores", "classes", "masks")}
