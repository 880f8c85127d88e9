"""Independent NumPy references shared by the tests (written from the definitions, not from the package)."""
import numpy as np


def _bilinear_taps(y, x, height, width):
    """torchvision's ``bilinear_interpolate`` as ``[(row, col, weight)]``; empty for a sample off the map."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return [(y_low, x_low, hy * hx), (y_low, x_high, hy * lx), (y_high, x_low, ly * hx), (y_high, x_high, ly * lx)]


def reference_roi_weights(box, spatial_scale, height, width, output_size, sampling_ratio):
    """``[out, out, H, W]`` float64 weights with ``output[p, q] = sum_hw weights[p, q, h, w] * features[h, w]``.

    ``box`` is ``[y1, x1, y2, x2]`` in image pixels; ``spatial_scale`` is ``1 / stride``.
    """
    y1, x1, y2, x2 = (float(v) * spatial_scale - 0.5 for v in box)
    bin_h, bin_w = (y2 - y1) / output_size, (x2 - x1) / output_size
    count = sampling_ratio * sampling_ratio
    weights = np.zeros([output_size, output_size, height, width])
    for ph in range(output_size):
        for pw in range(output_size):
            for iy in range(sampling_ratio):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / sampling_ratio
                for ix in range(sampling_ratio):
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / sampling_ratio
                    for row, col, weight in _bilinear_taps(y, x, height, width):
                        weights[ph, pw, row, col] += weight / count
    return weights
