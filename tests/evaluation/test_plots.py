"""Tests for mrcnn_tf/evaluation/plots.py: every figure is a readable PNG, overlays show exactly the colours they
should, empty inputs still give a figure, and the overlay sample keeps slices with and without tumour."""
import cv2
import numpy as np
import pytest

from mrcnn_tf.evaluation import plots
from mrcnn_tf.evaluation.records import ImageRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = 32
GT_BOX = (4, 4, 14, 14)  # [y1, x1, y2, x2], exclusive end
DET_BOX = (16, 16, 28, 28)  # apart from the ground truth, so neither contour hides the other


def _box_masks(boxes):
    """Filled boxes ``[n, 4]`` as masks ``[n, 32, 32]`` uint8."""
    masks = np.zeros((len(boxes), SIZE, SIZE), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(masks, np.asarray(boxes, int)):
        mask[y1:y2, x1:x2] = 1
    return masks


def make_record(image_id, tumour=True, scores=(0.9,), with_det_masks=True, with_gt_masks=True):
    """A 32x32 record: one ground-truth square when ``tumour``, one detection square per score."""
    gt_boxes = np.array([GT_BOX] if tumour else np.zeros((0, 4)), np.float32)
    det_boxes = np.array([DET_BOX] * len(scores), np.float32).reshape(-1, 4)
    return ImageRecord(
        image_id=image_id, file_name=f"/data/patient_{image_id}/slice_{image_id}.tif", patient=None,
        height=SIZE, width=SIZE, gt_boxes=gt_boxes,
        gt_masks=_box_masks(gt_boxes) if with_gt_masks else None,
        gt_crowd=np.zeros(len(gt_boxes), bool), det_boxes=det_boxes,
        det_scores=np.array(scores, np.float32),
        det_masks=_box_masks(det_boxes) if with_det_masks else None,
    )


def grey_image(level=90):
    return np.full((SIZE, SIZE, 3), level, np.uint8)


def read_png(path, min_height=150, min_width=150):
    """Check the PNG signature, read the file back as RGB ``[H, W, 3]`` and check it is a real picture."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    bgr = cv2.imread(str(path))
    assert bgr is not None
    assert bgr.shape[0] >= min_height and bgr.shape[1] >= min_width
    assert bgr.std() > 0, "a blank picture"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def count_red(rgb):
    return int(((rgb[..., 0] >= 200) & (rgb[..., 1] <= 60) & (rgb[..., 2] <= 60)).sum())


def count_green(rgb):
    return int(((rgb[..., 1] >= 200) & (rgb[..., 0] <= 60) & (rgb[..., 2] <= 60)).sum())


# --- precision-recall ---

def test_pr_curves_write_a_png(tmp_path):
    curves = {"box": dict(precision=[1.0, 1.0, 0.67, 0.75], recall=[0.25, 0.5, 0.5, 0.75], ap=0.912),
              "mask": dict(precision=[1.0, 0.5], recall=[0.25, 0.25], ap=0.25)}
    path = tmp_path / "pr.png"
    assert plots.plot_pr_curves(curves, path) == path
    read_png(path, min_height=300, min_width=400)


def test_pr_curves_accept_missing_ap_and_empty_curves(tmp_path):
    curves = {"box": dict(precision=[], recall=[], ap=None), "mask": dict(precision=[], recall=[], ap=None)}
    read_png(plots.plot_pr_curves(curves, tmp_path / "pr.png"))
    read_png(plots.plot_pr_curves({}, tmp_path / "none.png"))


def test_pr_legend_text():
    assert plots._ap_label("box", 0.91234) == "box AP50 = 0.912"
    assert plots._ap_label("mask", None) == "mask AP50 = n/a"


def test_pr_curves_reject_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="'box'"):
        plots.plot_pr_curves({"box": dict(precision=[1.0], recall=[0.1, 0.2], ap=0.1)}, tmp_path / "pr.png")


# --- confusion matrix ---

def test_confusion_matrix_writes_a_png(tmp_path):
    path = tmp_path / "cm.png"
    assert plots.plot_confusion_matrix(dict(tp=40, fp=3, fn=5, tn=52), path) == path
    read_png(path, min_height=300, min_width=300)


def test_confusion_table_follows_table_1_layout():
    table = plots._confusion_table(dict(tp=1, fp=2, fn=3, tn=4))
    np.testing.assert_array_equal(table, [[1, 2], [3, 4]])  # rows predicted +/-, columns actual +/-


def test_confusion_matrix_of_zeros_and_missing_count(tmp_path):
    read_png(plots.plot_confusion_matrix(dict(tp=0, fp=0, fn=0, tn=0), tmp_path / "zero.png"))
    with pytest.raises(ValueError, match="tn"):
        plots.plot_confusion_matrix(dict(tp=1, fp=2, fn=3), tmp_path / "cm.png")


# --- Dice histogram ---

def test_dice_histogram_writes_a_png(tmp_path):
    values = list(np.random.default_rng(0).uniform(0.4, 1.0, 50)) + [0.0, 1.0]
    path = tmp_path / "dice.png"
    assert plots.plot_dice_histogram(values, path) == path
    read_png(path, min_height=250, min_width=400)


def test_dice_histogram_of_no_slice_says_so(tmp_path, monkeypatch):
    messages = []
    draw_message = plots._message
    monkeypatch.setattr(plots, "_message", lambda fig, text: (messages.append(text), draw_message(fig, text)))
    read_png(plots.plot_dice_histogram([], tmp_path / "dice.png"))
    assert messages == ["no slice with tumour"]


def test_dice_histogram_rejects_values_outside_unit_interval(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_dice_histogram([0.5, 1.2], tmp_path / "dice.png")
    with pytest.raises(ValueError):
        plots.plot_dice_histogram([0.5, float("nan")], tmp_path / "dice.png")


# --- overlays ---

def test_overlay_tile_is_a_nearest_neighbour_enlargement():
    tile = plots.overlay_tile(make_record(1), grey_image(), score_threshold=0.5)
    assert tile.shape == (256, 256, 3) and tile.dtype == np.uint8
    blocks = tile.reshape(32, 8, 32, 8, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every 8x8 block is one source pixel
    assert count_red(tile) > 0 and count_green(tile) > 0


def test_overlay_page_shows_ground_truth_and_detection(tmp_path):
    path = tmp_path / "overlays.png"
    assert plots.plot_overlays([make_record(1)], [grey_image()], path, score_threshold=0.5) == path
    rgb = read_png(path, min_height=256, min_width=256)
    assert count_red(rgb) > 50
    assert count_green(rgb) > 50


def test_overlay_page_has_no_red_below_threshold(tmp_path):
    record = make_record(1, scores=(0.3, 0.2))
    rgb = read_png(plots.plot_overlays([record], [grey_image()], tmp_path / "o.png", score_threshold=0.5))
    assert count_red(rgb) == 0
    assert count_green(rgb) > 50


def test_overlay_draws_boxes_when_there_are_no_masks(tmp_path):
    record = make_record(1, with_det_masks=False, with_gt_masks=False)
    rgb = read_png(plots.plot_overlays([record], [grey_image()], tmp_path / "o.png", score_threshold=0.5))
    assert count_red(rgb) > 50
    assert count_green(rgb) > 50


def test_overlay_page_of_many_records_and_of_none(tmp_path):
    records = [make_record(i, tumour=i % 3 == 0, scores=(0.9,) if i % 2 else ()) for i in range(7)]
    images = [grey_image(60 + 10 * i) for i in range(7)]
    read_png(plots.plot_overlays(records, images, tmp_path / "page.png", 0.5, max_tiles=5, columns=2),
             min_height=3 * 256, min_width=2 * 256)
    read_png(plots.plot_overlays([], [], tmp_path / "empty.png", score_threshold=0.5))


def test_overlay_rejects_misaligned_or_wrong_size_images(tmp_path):
    with pytest.raises(ValueError, match="one image per record"):
        plots.plot_overlays([make_record(1)], [], tmp_path / "o.png", 0.5)
    with pytest.raises(ValueError, match="slice_1.tif"):
        plots.plot_overlays([make_record(1)], [np.zeros((16, 16, 3), np.uint8)], tmp_path / "o.png", 0.5)


def test_overlay_sample_keeps_slices_with_and_without_tumour():
    records = [make_record(i, tumour=i < 3) for i in range(20)]  # 3 with tumour, 17 without
    chosen = plots.overlay_indices(records, max_tiles=6)
    assert len(chosen) == 6 and chosen == sorted(set(chosen))
    assert any(records[i].has_tumour for i in chosen)
    assert any(not records[i].has_tumour for i in chosen)
    assert chosen[-1] == 19  # spread to the end, not the first six


def test_overlay_sample_takes_all_that_fit_and_spreads_one_kind():
    assert plots.overlay_indices([make_record(i) for i in range(3)], max_tiles=4) == [0, 1, 2]
    assert plots.overlay_indices([make_record(i) for i in range(9)], max_tiles=3) == [0, 4, 8]


def test_moving_average_is_trailing_and_shorter_at_the_start():
    np.testing.assert_allclose(plots.moving_average([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(plots.moving_average([2.0], 50), [2.0])


def test_learning_curve_writes_a_png_with_unvalidated_epochs(tmp_path):
    steps = {"step": np.arange(1, 101), "loss": np.linspace(2, 0.5, 100), "mask": np.linspace(0.7, 0.2, 100)}
    history = {"step": [50, 100], "val_box_ap50": [np.nan, 0.4], "val_mask_ap50": [np.nan, 0.3]}
    path = plots.plot_learning_curve(steps, history, str(tmp_path / "curve.png"))
    assert open(path, "rb").read(8) == PNG_SIGNATURE
