"""Detection on images of any size: resize to the network input, run the model, map results back.

Boxes come back in the pixels of the image given (``[y1, x1, y2, x2]``, see ``ops.boxes``) and masks are pasted
at its full size.
"""
import weakref

import numpy as np
import tensorflow as tf

from mrcnn_tf.data.instances import to_rgb
from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops import masks as mask_ops


_COMPILED = weakref.WeakKeyDictionary()


def compiled_forward(model):
    """``model``'s inference as one cached ``tf.function`` (eager calls re-run every op from Python)."""
    if model not in _COMPILED:
        _COMPILED[model] = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
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
    height, width = image.shape[:2]
    size = model.config.image_size
    resized = tf.image.resize(image[None].astype(np.float32), (size, size), antialias=False)
    outputs = compiled_forward(model)(tf.cast(tf.round(resized), tf.uint8))
    count = int(outputs["num_detections"][0])
    boxes = box_ops.scale_boxes(outputs["boxes"][:, :count], height / size, width / size)  # [1, n, 4]
    probs = mask_ops.paste_masks(outputs["mask_probs"][:, :count], boxes, height, width)  # [1, n, H, W]
    threshold = model.config.inference.mask_threshold
    return {
        "boxes": boxes[0].numpy(),
        "scores": outputs["scores"][0, :count].numpy(),
        "classes": outputs["classes"][0, :count].numpy(),
        "masks": (probs[0].numpy() >= threshold).astype(np.uint8),
    }
