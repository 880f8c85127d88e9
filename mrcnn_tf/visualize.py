"""Pictures of predictions: ground-truth and predicted contours drawn over a slice, with scores."""
import cv2
import numpy as np

GT_COLOUR = (0, 255, 0)  # green, RGB
PRED_COLOUR = (255, 0, 0)  # red, RGB


def _draw_contours(canvas, mask, colour):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, colour, 1)


def draw_overlay(image, gt_masks, detections):
    """An RGB uint8 picture of ``image`` ``[H, W, 3]`` with ground-truth masks ``[G, H, W]`` in green and the
    detections (``boxes`` ``[n, 4]``, ``scores`` ``[n]``, ``masks`` ``[n, H, W]``) in red, each score written
    at the top-left corner of its box."""
    canvas = np.ascontiguousarray(image.copy())
    for mask in gt_masks:
        if mask.any():
            _draw_contours(canvas, mask, GT_COLOUR)
    for box, score, mask in zip(detections["boxes"], detections["scores"], detections["masks"]):
        _draw_contours(canvas, mask, PRED_COLOUR)
        y1, x1 = int(box[0]), int(box[1])
        cv2.putText(canvas, f"{score:.2f}", (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, PRED_COLOUR, 1)
    return canvas


def write_png(path, rgb):
    """Write an RGB uint8 image to ``path`` as PNG."""
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
