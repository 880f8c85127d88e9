"""Run a model over dataset items and collect :class:`ImageRecord` s at each image's own size."""
import keras
import numpy as np

from mrcnn_tf.data.instances import mask_to_box
from mrcnn_tf.evaluation.records import ImageRecord


def record_from_detections(image_id, item, masks, found):
    """An :class:`ImageRecord` from instance masks ``[G, H, W]`` and a detector's output."""
    height, width = masks.shape[1:]
    return ImageRecord(
        image_id=image_id,
        file_name=item.image_path,
        patient=item.patient,
        height=int(height),
        width=int(width),
        gt_boxes=np.array([mask_to_box(m) for m in masks], np.float32).reshape(-1, 4),
        gt_masks=masks.astype(np.uint8),
        gt_crowd=np.zeros(len(masks), bool),
        det_boxes=found["boxes"].astype(np.float32),
        det_scores=found["scores"].astype(np.float32),
        det_masks=found["masks"],
    )


def predict_records(detect, items, reader, keep_images=(), verbose=True):
    """Detections and ground truth for every item.

    Args:
      detect: a detector (``mrcnn_tf.detectors``: image -> detections). items: dataset items (``image_path``,
        ``patient``).
      reader: a ``data.readers`` reader of the items (images and masks at the file's own size).
      keep_images: indices of the items whose images are returned too (for overlays).
    Returns:
      records (list of ImageRecord, ``image_id`` = position + 1) and a dict index -> image.
    """
    progress = keras.utils.Progbar(len(items), unit_name="image") if verbose else None
    records, images = [], {}
    for index, item in enumerate(items):
        image, masks, _ = reader.read(item)
        found = detect(image)
        records.append(record_from_detections(index + 1, item, masks, found))
        if index in keep_images:
            images[index] = image
        if progress is not None:
            progress.update(index + 1)
    return records, images

