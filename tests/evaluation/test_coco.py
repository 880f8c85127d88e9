"""Tests for mrcnn_tf/evaluation/coco.py on hand-made records, files written to ``tmp_path``, and the real
Roboflow export.

Boxes are ``[y1, x1, y2, x2]`` exclusive end; the rectangle masks of a box fill ``mask[y1:y2, x1:x2]``, so that
box IoU and mask IoU are the same number and can be computed by hand.
"""
import json
import os

import numpy as np
import pytest

from conftest import ellipse_masks
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation import coco
from mrcnn_tf.evaluation.records import ImageRecord

ROBOFLOW_TEST = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "coco_roboflow_256",
                             "test", "_annotations.coco.json")


def _rectangle_masks(height, width, boxes):
    """``[N, H, W]`` uint8 masks filling each ``[y1, x1, y2, x2]`` of ``boxes``."""
    masks = np.zeros((len(boxes), height, width), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(masks, np.asarray(boxes, int).reshape(-1, 4)):
        mask[y1:y2, x1:x2] = 1
    return masks


def _record(image_id, gt_boxes, det_boxes=(), scores=(), crowd=None, size=(48, 64), masks=True):
    """An ImageRecord with rectangle masks (or none when ``masks`` is False) for its boxes."""
    height, width = size
    gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    det_boxes = np.asarray(det_boxes, np.float32).reshape(-1, 4)
    crowd = np.zeros(len(gt_boxes), bool) if crowd is None else np.asarray(crowd, bool)
    return ImageRecord(
        image_id=image_id, file_name=f"image_{image_id}.png", patient=None, height=height, width=width,
        gt_boxes=gt_boxes, gt_masks=_rectangle_masks(height, width, gt_boxes) if masks else None, gt_crowd=crowd,
        det_boxes=det_boxes, det_scores=np.asarray(scores, np.float32),
        det_masks=_rectangle_masks(height, width, det_boxes) if masks else None)


def _tight_boxes(masks):
    """``[N, 4]`` float32 exclusive-end boxes around each of ``masks`` ``[N, H, W]``."""
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
    return np.array(boxes, np.float32).reshape(-1, 4)


def _write(path, content):
    with open(path, "w") as file:
        file.write(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _all_figures(result, value):
    """True when AP, AP50 and AP75 of both boxes and masks equal ``value``."""
    figures = [result[kind][name] for kind in ("box", "mask") for name in ("ap", "ap50", "ap75")]
    return all(figure == pytest.approx(value) for figure in figures)


def _perfect(records):
    """Copies of ``records`` whose detections are their non-crowd ground truth, scores decreasing."""
    perfect = []
    for record in records:
        keep = ~record.gt_crowd
        masks = None if record.gt_masks is None else record.gt_masks[keep]
        scores = np.linspace(0.9, 0.5, int(keep.sum())).astype(np.float32)
        perfect.append(ImageRecord(**{**record.__dict__, "det_boxes": record.gt_boxes[keep], "det_scores": scores,
                                      "det_masks": masks}))
    return perfect


def test_yxyx_xywh_round_trip():
    boxes = np.array([[2, 3, 12, 10], [0, 0, 1, 1]], np.float32)
    np.testing.assert_array_equal(coco.yxyx_to_xywh(boxes), [[3, 2, 7, 10], [0, 0, 1, 1]])
    np.testing.assert_array_equal(coco.xywh_to_yxyx(coco.yxyx_to_xywh(boxes)), boxes)


def test_ground_truth_round_trip(tmp_path):
    masks = ellipse_masks(40, [(12, 14, 6, 9), (28, 26, 8, 5)])  # [2, 40, 40]
    first = _record(3, _tight_boxes(masks), crowd=[False, True], size=(40, 40))
    first.gt_masks, first.patient = masks, "TCGA_CS_4942"
    empty = _record(7, [], size=(24, 32))
    dataset = coco.to_coco_ground_truth([first, empty])
    assert dataset["images"][0]["patient"] == "TCGA_CS_4942" and "patient" not in dataset["images"][1]
    y1, x1, y2, x2 = _tight_boxes(masks)[1]
    second = dataset["annotations"][1]
    assert second["bbox"] == [x1, y1, x2 - x1, y2 - y1]
    assert second["area"] == masks[1].sum() and second["iscrowd"] == 1 and second["id"] == 2
    records, names = coco.load_coco_ground_truth(_write(tmp_path / "gt.json", dataset))
    assert names == ["tumour"]
    assert [(r.image_id, r.file_name, r.patient, r.height, r.width) for r in records] == [
        (3, "image_3.png", "TCGA_CS_4942", 40, 40), (7, "image_7.png", None, 24, 32)]
    np.testing.assert_array_equal(records[0].gt_masks, masks)
    np.testing.assert_array_equal(records[0].gt_boxes, first.gt_boxes)
    np.testing.assert_array_equal(records[0].gt_crowd, [False, True])
    assert records[1].gt_boxes.shape == (0, 4) and records[1].gt_masks.shape == (0, 24, 32)
    assert all(r.det_boxes.shape == (0, 4) and r.det_scores.shape == (0,) and r.det_masks is None for r in records)


def test_perfect_detections_score_one():
    records = _perfect([_record(0, [[4, 4, 20, 30], [25, 30, 45, 60]]), _record(1, []), _record(2, [[0, 0, 10, 10]])])
    assert _all_figures(coco.coco_ap(records), 1.0)


def test_workdir_keeps_both_files(tmp_path):
    records = _perfect([_record(5, [[4, 4, 20, 30]])])
    coco.coco_ap(records, workdir=str(tmp_path / "coco"))
    assert sorted(os.listdir(tmp_path / "coco")) == ["coco_detections.json", "coco_ground_truth.json"]
    with open(tmp_path / "coco" / "coco_detections.json") as file:
        assert json.load(file) == coco.to_coco_results(records)


def test_detections_at_iou_0_61_pass_at_50_and_fail_at_75():
    # A 25 x 25 box shifted 6 px right: intersection 25 * 19 = 475, union 25 * 31 = 775, IoU = 0.613 for the
    # boxes and the rectangle masks alike; it passes thresholds 0.50, 0.55, 0.60 of the ten, so AP = 3 / 10.
    records = [_record(0, [[10, 10, 35, 35]], [[10, 16, 35, 41]], [0.9])]
    result = coco.coco_ap(records)
    for kind in ("box", "mask"):
        assert result[kind]["ap50"] == pytest.approx(1.0)
        assert result[kind]["ap75"] == pytest.approx(0.0)
        assert result[kind]["ap"] == pytest.approx(0.3)


def test_zero_detections_score_zero():
    records = [_record(0, [[4, 4, 20, 30]]), _record(1, [])]
    assert _all_figures(coco.coco_ap(records), 0.0)


def test_no_ground_truth_gives_none():
    result = coco.coco_ap([_record(0, [], [[4, 4, 20, 30]], [0.8])])
    assert result["box"] == {"ap": None, "ap50": None, "ap75": None} and result["mask"]["ap"] is None


def test_crowd_regions_are_neither_missed_nor_false_positives():
    # Dropping the crowd regions would make the best-scoring detection a false positive (AP 0.5); counting them
    # as instances would leave the second one undetected (recall 2 / 3).
    record = _record(0, [[5, 5, 25, 25], [30, 30, 45, 60], [5, 35, 25, 60]], [[30, 30, 45, 60], [5, 5, 25, 25]],
                     [0.95, 0.8], crowd=[False, True, True])
    assert _all_figures(coco.coco_ap([record]), 1.0)


def test_roboflow_export_loads_as_one_category():
    if not os.path.isfile(ROBOFLOW_TEST):
        pytest.skip(f"Roboflow COCO export not found at {os.path.abspath(ROBOFLOW_TEST)}")
    records, names = coco.load_coco_ground_truth(ROBOFLOW_TEST)
    with open(ROBOFLOW_TEST) as file:
        annotations = json.load(file)["annotations"]
    assert names == ["object"] and len(records) == 4
    for record in records:
        annotation = next(a for a in annotations if a["image_id"] == record.image_id)
        assert record.gt_masks.shape == (1, 256, 256) and not record.gt_crowd.any()
        # Roboflow's "area" is the box's, so the mask is checked against the polygon's own (shoelace) area.
        xs, ys = np.array(annotation["segmentation"][0][0::2]), np.array(annotation["segmentation"][0][1::2])
        polygon_area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
        assert record.gt_masks[0].sum() == pytest.approx(polygon_area, rel=0.02)
        np.testing.assert_allclose(_tight_boxes(record.gt_masks), record.gt_boxes, atol=2)
    # Roboflow numbers annotations from 0, which COCOeval would miscount; the rewritten file must score 1.
    assert _all_figures(coco.coco_ap(_perfect(records)), 1.0)


_VALID_IMAGE = {"id": 1, "file_name": "a.png", "height": 16, "width": 16}
_POLYGON = [2, 2, 10, 2, 10, 10]


def _ground_truth_file(annotation):
    return {"images": [_VALID_IMAGE], "categories": [{"id": 1, "name": "tumour"}],
            "annotations": [{"id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "iscrowd": 0, **annotation}]}


@pytest.mark.parametrize("content, message", [
    ("{\"images\": [", "not valid JSON"),
    (_ground_truth_file({"image_id": 1, "segmentation": [[2, 2, 10, 10]]}), "a polygon of 4 numbers"),
    (_ground_truth_file({"image_id": 9, "segmentation": [_POLYGON]}), "image_id 9"),
    ({"images": [_VALID_IMAGE], "annotations": []}, "lacks ['categories']"),
])
def test_load_ground_truth_errors_name_the_file(tmp_path, content, message):
    path = _write(tmp_path / "bad_ground_truth.json", content)
    with pytest.raises(DataError) as error:
        coco.load_coco_ground_truth(path)
    assert path in str(error.value) and message in str(error.value)


def _short_rle():
    """An uncompressed RLE of the 16 x 16 image whose runs cover 200 of its 256 pixels."""
    return {"size": [16, 16], "counts": [100, 100]}


@pytest.mark.parametrize("content, message", [
    (_ground_truth_file({"image_id": 1, "segmentation": _short_rle()}),
     "annotation 1 of image 1 has an RLE whose runs cover 200 pixels"),
    (_ground_truth_file({"image_id": 1, "segmentation": {"size": [16, 16], "counts": "garbage!!"}}),
     "annotation 1 of image 1 has a compressed RLE whose counts string is not valid"),
    (_ground_truth_file({"image_id": 1, "segmentation": {"size": ["16", "x"], "counts": [256]}}),
     "annotation 1 of image 1 has an RLE of size ['16', 'x']"),
    (_ground_truth_file({"image_id": 1, "segmentation": [[2, 2, 10, 2, 1e30, 10]]}),
     "annotation 1 of image 1 has a polygon point with x = 1e+30"),
    ({**_ground_truth_file({"image_id": 1, "segmentation": [_POLYGON]}),
      "images": [{**_VALID_IMAGE, "height": -16}]}, "image 1 has height -16"),
    ({**_ground_truth_file({"image_id": 1, "segmentation": [_POLYGON]}),
      "images": [_VALID_IMAGE, {**_VALID_IMAGE, "file_name": "b.png"}]}, "repeats image id 1"),
])
def test_load_ground_truth_refuses_a_bad_image_or_mask_whole(tmp_path, content, message):
    # A ground truth cannot be partly right: one bad mask refuses the file, naming it and the annotation.
    path = _write(tmp_path / "bad_ground_truth.json", content)
    with pytest.raises(DataError) as error:
        coco.load_coco_ground_truth(path)
    assert str(error.value).startswith(path) and message in str(error.value)


def test_attach_detections_refuses_a_short_rle(tmp_path):
    result = {"image_id": 0, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5,
              "segmentation": {"size": [48, 64], "counts": [48 * 64 - 1]}}
    path = _write(tmp_path / "results.json", [result])
    with pytest.raises(DataError, match="a result of image 0 has an RLE whose runs cover 3071 pixels") as error:
        coco.attach_coco_detections([_record(0, [])], path)
    assert str(error.value).startswith(path)


@pytest.mark.parametrize("content, message", [
    ("[{\"image_id\": 0,", "not valid JSON"),
    ([{"image_id": 4, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}], "image_id 4"),
])
def test_attach_detections_errors_name_the_file(tmp_path, content, message):
    path = _write(tmp_path / "bad_results.json", content)
    with pytest.raises(DataError) as error:
        coco.attach_coco_detections([_record(0, [])], path)
    assert path in str(error.value) and message in str(error.value)


def test_attach_detections_reproduces_them(tmp_path):
    records = [_record(0, [[4, 4, 20, 30]], [[4, 4, 20, 30], [25, 30, 45, 60], [0, 0, 8, 8]], [0.9, 0.6, 0.3]),
               _record(1, [], size=(32, 24)), _record(2, [], [[1, 2, 11, 12]], [0.4], size=(16, 16))]
    results = coco.to_coco_results(records)
    assert all("segmentation" in result for result in results)
    # Best first is the reader's job, not the file's.
    path = _write(tmp_path / "results.json", results[::-1])
    bare = [ImageRecord(**{**r.__dict__, "det_boxes": np.zeros((0, 4), np.float32),
                           "det_scores": np.zeros(0, np.float32), "det_masks": None}) for r in records]
    attached = coco.attach_coco_detections(bare, path)
    for expected, record in zip(records, attached):
        np.testing.assert_array_equal(record.det_boxes, expected.det_boxes)
        np.testing.assert_array_equal(record.det_scores, expected.det_scores)
        np.testing.assert_array_equal(record.det_masks, expected.det_masks)
        assert record.det_boxes.dtype == np.float32 and record.det_masks.dtype == np.uint8
    assert all(r.det_masks is None for r in bare)  # the input records are left alone


def test_results_without_segmentation_give_no_masks(tmp_path):
    with_boxes_only = [_record(0, [[4, 4, 20, 30]], [[4, 4, 20, 30]], [0.9], masks=False), _record(1, [], masks=False)]
    results = coco.to_coco_results(with_boxes_only)
    assert results and not any("segmentation" in result for result in results)
    ground_truth = [_record(0, [[4, 4, 20, 30]]), _record(1, [])]
    attached = coco.attach_coco_detections(ground_truth, _write(tmp_path / "results.json", results))
    assert all(record.det_masks is None for record in attached)
    np.testing.assert_array_equal(attached[0].det_boxes, [[4, 4, 20, 30]])
    result = coco.coco_ap(attached)
    assert result["mask"] is None and result["box"]["ap"] == pytest.approx(1.0)


def test_an_empty_results_file_gives_empty_masks_so_mask_figures_are_zero(tmp_path):
    ground_truth = [_record(0, [[4, 4, 20, 30]]), _record(1, [])]
    attached = coco.attach_coco_detections(ground_truth, _write(tmp_path / "results.json", []))
    assert [record.det_masks.shape for record in attached] == [(0, 48, 64), (0, 48, 64)]
    assert coco.coco_ap(attached)["mask"]["ap"] == 0.0
    without_masks = [_record(0, [[4, 4, 20, 30]], masks=False)]
    assert coco.attach_coco_detections(without_masks, _write(tmp_path / "r.json", []))[0].det_masks is None
