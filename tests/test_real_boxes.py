"""OWLv2 grounding and SAM automatic boxes: hand-made masks for the rules, tiny random models for the plumbing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from srum_core.boxes.geometry import box_iou, mask_to_box, nms
from srum_core.boxes.owlv2 import Owlv2Grounding, owlv2_pixel_values
from srum_core.boxes.sam import SamAutomaticBoxes
from srum_core.protocol import BoxSource
from tests.conftest_janus import build_tiny_janus, build_tiny_owlv2, build_tiny_sam


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes")
    return {"owl": build_tiny_owlv2(root / "owl"), "sam": build_tiny_sam(root / "sam")}


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_box_helpers_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([50 / 150, 0.0, 1.0])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]])
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5) == [1, 2]  # box 0 overlaps box 1 (IoU 0.82)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:7] = True
    assert mask_to_box(mask) == (3, 2, 7, 5)  # exclusive ends: mask[2:5, 3:7]
    assert mask_to_box(np.zeros((4, 4), bool)) is None


def test_sam_rules_threshold_nms_area_order_top_k(monkeypatch):
    h, w = 40, 50
    masks = np.zeros((6, h, w), bool)
    masks[0, 0:10, 0:10] = True  # area 100
    masks[1, 0:30, 0:40] = True  # area 1200, the largest
    masks[2, 0:30, 0:39] = True  # duplicate of 1 with a lower score → removed by NMS
    masks[3, 20:40, 30:50] = True  # area 400
    masks[4, 35:36, 0:1] = True  # 1 pixel: below min_area (0.001 · 2000 = 2)
    masks[5, 5:25, 5:25] = True  # predicted IoU below the threshold
    scores = np.array([0.9, 0.95, 0.9, 0.8, 0.99, 0.5])
    source = SamAutomaticBoxes("unused", points_per_side=2, device="cpu", iou_threshold=0.7)
    monkeypatch.setattr(source, "masks", lambda image: (masks, scores))
    image = _noise(w, h)
    regions = source.propose(image, "ignored", max_regions=10)
    assert [r.box for r in regions] == [(0, 0, 40, 30), (30, 20, 50, 40), (0, 0, 10, 10)]
    assert all(r.source == "sam" and r.label is None for r in regions)
    assert [r.confidence for r in regions] == pytest.approx([0.95, 0.8, 0.9])
    assert [r.box for r in source.propose(image, "", max_regions=2)] == [(0, 0, 40, 30), (30, 20, 50, 40)]


def test_sam_point_grid_centres():
    source = SamAutomaticBoxes("unused", points_per_side=2, device="cpu")
    assert source.point_grid(32, 16).tolist() == [[8, 4], [24, 4], [8, 12], [24, 12]]
    with pytest.raises(ValueError, match="points_per_side"):
        SamAutomaticBoxes("unused", points_per_side=0)


def test_tiny_sam_through_from_pretrained(model_dirs):
    source = SamAutomaticBoxes(str(model_dirs["sam"]), points_per_side=3, device="cpu", iou_threshold=-1.0, nms_iou=1.0)
    assert isinstance(source, BoxSource) and source.kind == "automatic"
    image = _noise(48, 40)
    masks, scores = source.masks(image)
    assert masks.shape == (9, 40, 48) and masks.dtype == bool and scores.shape == (9,)
    regions = source.propose(image, "a red car", max_regions=4)
    assert 1 <= len(regions) <= 4
    for r in regions:
        assert all(isinstance(v, int) for v in r.box)
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 40


def test_owlv2_pixel_values_pad_bottom_right_then_resize(model_dirs):
    processor = pytest.importorskip("transformers").Owlv2Processor.from_pretrained(model_dirs["owl"])
    ip = processor.image_processor
    image = Image.new("RGB", (64, 32), (255, 255, 255))  # white, wider than tall: padding fills the bottom half
    x = owlv2_pixel_values(image, ip)
    assert x.shape == (1, 3, 32, 32)
    mean, std = np.array(ip.image_mean), np.array(ip.image_std)
    assert x[0, :, 2, 16].numpy() == pytest.approx((1 - mean) / std, abs=1e-5)  # top: the white image
    assert x[0, :, 30, 16].numpy() == pytest.approx((0 - mean) / std, abs=1e-5)  # bottom: zero padding


def test_tiny_owlv2_grounding_queries_from_the_prompt(model_dirs):
    source = Owlv2Grounding(str(model_dirs["owl"]), threshold=0.0, device="cpu")
    assert isinstance(source, BoxSource) and source.kind == "grounding"
    assert source.queries("a green bench and a red car") == ["green bench", "red car"]
    assert source.queries("!!!") == ["!!!"]  # no object parsed: the whole prompt is the query
    regions = source.propose(_noise(48, 40), "a green bench and a red car", max_regions=5)
    assert 1 <= len(regions) <= 5
    assert {r.label for r in regions} <= {"green bench", "red car"}
    confidences = [r.confidence for r in regions]
    assert confidences == sorted(confidences, reverse=True)
    for r in regions:
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 40
    with pytest.raises(ValueError, match="threshold"):
        Owlv2Grounding("unused", threshold=1.5)


def test_janus_backend_box_sources_are_configurable(model_dirs, tmp_path):
    from srum_core.backends.janus import load_janus

    janus_dir = build_tiny_janus(tmp_path / "janus")
    plain = load_janus(str(janus_dir), device="cpu", use_cache=False, use_segmenter=False)
    assert plain.box_sources() == {}
    full = load_janus(
        str(janus_dir),
        device="cpu",
        use_cache=False,
        grounding_model=str(model_dirs["owl"]),
        sam_model=str(model_dirs["sam"]),
    )
    sources = full.box_sources()
    assert list(sources)[:2] == ["grounding", "sam"]
    assert sources["grounding"].kind == "grounding" and sources["sam"].kind == "automatic"
    assert sources.get("segmenter") is None or sources["segmenter"].kind == "automatic"
