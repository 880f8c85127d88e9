"""What evaluation works on: one record per image with its ground truth and its detections.

Boxes are ``[y1, x1, y2, x2]`` float32 in the image's own pixels (the convention of ``ops.boxes``, exclusive
end); masks are uint8 0/1 at the image's own size ``[H, W]``. Shape letters: ``G`` ground-truth instances,
``D`` detections.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass
class ImageRecord:
    """Ground truth and detections of one image.

    Attributes:
      image_id: int, unique within an evaluation (the COCO image id where there is one).
      file_name: the image file, for reports and overlays.
      patient: patient id, or None when the data has none.
      height, width: the image's own size.
      gt_boxes: ``[G, 4]`` float32. gt_masks: ``[G, H, W]`` uint8, or None when the ground truth has no masks.
      gt_crowd: ``[G]`` bool, True for COCO ``iscrowd`` regions (matched detections are ignored, not counted).
      det_boxes: ``[D, 4]`` float32. det_scores: ``[D]`` float32, best first.
      det_masks: ``[D, H, W]`` uint8, or None when the detections carry no masks.
    """

    image_id: int
    file_name: str
    patient: str | None
    height: int
    width: int
    gt_boxes: np.ndarray
    gt_masks: np.ndarray | None
    gt_crowd: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_masks: np.ndarray | None

    @property
    def patient_key(self):
        """The unit that per-patient figures and the bootstrap group by: the patient id, or the file name when the
        data has none (each image is then its own unit)."""
        return self.file_name if self.patient is None else self.patient

    @property
    def has_tumour(self):
        """Actual positive at the image level: at least one non-crowd ground-truth instance."""
        return bool((~self.gt_crowd).any())

    def detections_above(self, score_threshold):
        """Indices of the detections scoring at least ``score_threshold``."""
        return np.flatnonzero(self.det_scores >= score_threshold)
