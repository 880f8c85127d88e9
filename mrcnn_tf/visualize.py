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


# Distinct colours (RGB) for instance ids 1, 2, ...: the colour-mapped instance masks and the predict overlays.
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
                    (220, 190, 255)], np.uint8)
READABLE_SIDE = 512  # overlays are enlarged to at least this long side, so that their text can be read
LEGEND_HEIGHT = 24


def colour_instances(ids):
    """``[H, W]`` instance ids (0 background) -> ``[H, W, 3]`` uint8 RGB, one palette colour per id, black
    background: the instance masks as a person looks at them."""
    colours = np.concatenate([np.zeros((1, 3), np.uint8), PALETTE[(np.arange(int(ids.max(initial=0))) %
                                                                   len(PALETTE))]])
    return colours[ids]


def _label(canvas, text, origin, colour, scale=0.5):
    """``text`` at ``origin`` (x, y of its baseline's left end) on a dark box, in ``colour``."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (width, height), baseline = cv2.getTextSize(text, font, scale, 1)
    x, y = origin
    cv2.rectangle(canvas, (x - 1, y - height - 2), (x + width + 1, y + baseline), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x, y), font, scale, colour, 1, cv2.LINE_AA)


def draw_prediction(image, detections, score_threshold):
    """A picture of the detections of ``image`` ``[H, W, 3]`` for a person: the image enlarged to a readable
    size, each detection's contour in its palette colour with ``#i score`` beside it, and a legend line below
    (the threshold, the count, or "no tumour found"). ``detections``: ``boxes`` ``[n, 4]``, ``scores`` ``[n]``,
    ``masks`` ``[n, H, W]``, the ones at or above ``score_threshold`` only, best first."""
    height, width = image.shape[:2]
    scale = max(1, int(np.ceil(READABLE_SIDE / max(height, width))))
    canvas = cv2.resize(np.ascontiguousarray(image), (width * scale, height * scale),
                        interpolation=cv2.INTER_NEAREST)
    for index, (box, score, mask) in enumerate(zip(detections["boxes"], detections["scores"],
                                                   detections["masks"])):
        colour = tuple(int(c) for c in PALETTE[index % len(PALETTE)])
        big = cv2.resize(mask.astype(np.uint8), (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colour, 2)
        y1, x1 = int(box[0] * scale), int(box[1] * scale)
        _label(canvas, f"#{index + 1} {score:.2f}", (max(x1, 2), max(y1 - 4, 14)), colour)
    count = len(detections["scores"])
    legend = np.zeros((LEGEND_HEIGHT, canvas.shape[1], 3), np.uint8)
    text = (f"{count} tumour{'s' if count != 1 else ''} at score >= {score_threshold:.2f}" if count
            else f"no tumour found (score >= {score_threshold:.2f})")
    _label(legend, text, (4, LEGEND_HEIGHT - 8), (255, 255, 255))
    return np.concatenate([canvas, legend], axis=0)
