"""The class-agnostic segmenter: one box per object, largest first, no knowledge of names."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import srum_core.boxes.segmenter as segmenter_module
from srum_core.boxes.segmenter import SegmenterBoxes, label_components
from srum_core.protocol import BoxSource
from srum_core.world.prompts import make_prompts
from srum_core.world.render import render_masks, render_scene, render_spec
from srum_core.world.spec import PlacedObject, Scene


def test_label_components_is_eight_connected():
    mask = np.zeros((6, 8), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[0, 5:8] = True
    mask[4, 2] = True
    labels, n = label_components(mask)
    assert n == 3
    assert labels[0, 0] == labels[1, 1] == 1 and set(labels[0, 5:8]) == {2} and labels[4, 2] == 3
    assert (labels[~mask] == 0).all()
    assert label_components(np.zeros((4, 4), dtype=bool))[1] == 0


def _flood_fill_labels(mask: np.ndarray) -> np.ndarray:
    """Reference labelling: breadth-first flood fill from each unlabelled pixel in raster order."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    n = 0
    for y0 in range(h):
        for x0 in range(w):
            if not mask[y0, x0] or labels[y0, x0]:
                continue
            n += 1
            labels[y0, x0] = n
            queue = [(y0, x0)]
            while queue:
                y, x = queue.pop()
                for ny in range(max(0, y - 1), min(h, y + 2)):
                    for nx in range(max(0, x - 1), min(w, x + 2)):
                        if mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = n
                            queue.append((ny, nx))
    return labels


def test_label_components_matches_flood_fill_on_random_and_winding_masks():
    rng = np.random.default_rng(0)
    masks = [rng.random((37, 53)) < p for p in (0.3, 0.45, 0.6)]
    snake = np.zeros((41, 41), dtype=bool)  # one long serpentine component: the worst case for propagation
    snake[::4, 1:-1] = True
    for k, row in enumerate(range(0, 40, 4)):  # join each row to the next at alternating ends
        snake[row + 1 : row + 4, -2 if k % 2 == 0 else 1] = True
    masks.append(snake)
    for mask in masks:
        labels, n = label_components(mask)
        expected = _flood_fill_labels(mask)
        assert n == expected.max()
        np.testing.assert_array_equal(labels, expected)
    assert label_components(snake)[1] == 1


def test_boxes_cover_objects_largest_first():
    scene = Scene(
        (
            PlacedObject("circle", "red", "small", "solid", cx=12.0, cy=12.0, radius=5.0),
            PlacedObject("square", "blue", "large", "striped", cx=40.0, cy=40.0, radius=10.0),
        )
    )
    regions = SegmenterBoxes(pad=1, background=False).propose(render_scene(scene), "anything", max_regions=10)
    assert [r.source for r in regions] == ["segmenter", "segmenter"]
    assert regions[0].box == (29, 29, 51, 51)  # the square's box (30, 30, 50, 50) padded by 1
    x1, y1, x2, y2 = regions[1].box
    assert (x1, y1, x2, y2) == (6, 6, 18, 18)
    assert len(SegmenterBoxes().propose(render_scene(scene), "", max_regions=1)) == 1


def test_one_box_per_object_on_random_scenes():
    rng = np.random.default_rng(0)
    seg = SegmenterBoxes()
    assert isinstance(seg, BoxSource) and seg.kind == "automatic" and seg.name == "segmenter"
    for spec in make_prompts("train", None, 60, seed=4):
        img, scene = render_spec(spec, rng)
        everything = seg.propose(img, spec.text)
        regions = [r for r in everything if r.label != SegmenterBoxes.BACKGROUND]
        assert len(regions) == len(scene.objects), spec.text
        background = [r for r in everything if r.label == SegmenterBoxes.BACKGROUND]
        for r in background:  # a background segment holds no object
            assert not any(r.box[0] <= o.cx < r.box[2] and r.box[1] <= o.cy < r.box[3] for o in scene.objects)
        areas_all = [(r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) for r in background]
        assert areas_all == sorted(areas_all, reverse=True)
        # Largest mask first: the clearly biggest object (by drawn area) owns the first box.
        areas = render_masks(scene).sum(axis=(1, 2))
        order = np.argsort(-areas)
        if len(areas) > 1 and areas[order[0]] > 1.2 * areas[order[1]]:
            big = scene.objects[int(order[0])]
            x1, y1, x2, y2 = regions[0].box
            assert x1 <= big.cx < x2 and y1 <= big.cy < y2
        for obj in scene.objects:  # every object's centre lies in some box
            assert any(r.box[0] <= obj.cx < r.box[2] and r.box[1] <= obj.cy < r.box[3] for r in regions)


def test_segmenter_knows_no_names():
    source = inspect.getsource(segmenter_module)
    for word in ("COLORS", "SHAPES", "referee", "circle", "triangle"):
        assert word not in source


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        SegmenterBoxes(threshold=2.0)
    with pytest.raises(ValueError, match="RGB"):
        SegmenterBoxes().propose(np.zeros((8, 8)), "")


def test_an_extra_or_wrong_object_gets_its_own_region_and_background_segments_come_too():
    from srum_core.world.render import scene_from_slots

    # Asked: a red square and a blue circle. Drawn: those two, a wrong-coloured circle and an extra triangle.
    scene = scene_from_slots([(0, "red", "square", "large", "solid"), (5, "blue", "circle", "large", "solid"),
                              (10, "green", "circle", "large", "solid"), (15, "yellow", "triangle", "large", "solid")])
    regions = SegmenterBoxes().propose(render_scene(scene), "a red square and a blue circle", max_regions=10)
    objects = [r for r in regions if r.label != SegmenterBoxes.BACKGROUND]
    assert len(objects) == 4
    for obj in scene.objects:
        assert sum(r.box[0] <= obj.cx < r.box[2] and r.box[1] <= obj.cy < r.box[3] for r in objects) == 1
    # Slots 0, 5, 10, 15 lie on the diagonal: the two off-diagonal quadrants are empty background.
    background = [r.box for r in regions if r.label == SegmenterBoxes.BACKGROUND]
    assert sorted(background) == [(0, 32, 32, 64), (32, 0, 64, 32)]
    assert regions[0].label == SegmenterBoxes.BACKGROUND  # largest mask first
    assert len(SegmenterBoxes().propose(render_scene(scene), "", max_regions=3)) == 3
