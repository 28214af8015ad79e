"""Reward maps and loss: hand-computed values for every SRUM variant (SRUM_SPEC §1.5–1.7)."""

import numpy as np
import pytest
import torch

from srum_core.config import RewardConfig
from srum_core.rewards import (
    MissingGlobalScore,
    build_pixel_map,
    build_reward_map,
    project_to_tokens,
    srum_loss,
)
from srum_core.types import GlobalJudgement, Region, RegionJudgement, RewardReport


def report(g, regions=(), width=32, height=32):
    glob = GlobalJudgement(score=g, parse_status="ok" if g is not None else "failed")
    judged = tuple(
        RegionJudgement(
            region=Region(box=box, source="test"),
            object_name="obj",
            score=s,
            parse_status="ok" if s is not None else "failed",
        )
        for box, s in regions
    )
    return RewardReport(prompt="p", width=width, height=height, global_judgement=glob, regions=judged)


def test_spec_worked_numbers_released():
    # SRUM_SPEC: g = 0.95 → background 0.4875; a 0.95-scored box → 0.950625.
    m = build_pixel_map(report(0.95, [((8, 8, 16, 16), 0.95)]), "released")
    assert m.dtype == np.float32 and m.shape == (32, 32)
    assert m[0, 0] == pytest.approx(0.4875)
    assert m[10, 10] == pytest.approx(0.950625)
    assert m[16, 16] == pytest.approx(0.4875)  # the box end is exclusive


def test_released_overlapping_boxes_take_max_and_negative_scores_vanish():
    r = report(1.0, [((0, 0, 20, 20), 0.2), ((10, 10, 30, 30), 0.8), ((0, 24, 8, 32), -0.9)])
    m = build_pixel_map(r, "released")
    assert m[5, 5] == pytest.approx(0.6)  # (0.2 + 1) / 2
    assert m[15, 15] == pytest.approx(0.9)  # overlap: max(0.6, 0.9)
    assert m[25, 25] == pytest.approx(0.9)
    assert m[28, 4] == pytest.approx(0.5)  # negative score below the 0.5 floor has no effect


def test_boxes_off_the_image_are_clamped():
    m = build_pixel_map(report(0.0, [((-10, -10, 4, 4), 1.0), ((40, 40, 50, 50), 1.0)]), "released")
    assert m[0, 0] == pytest.approx(0.5)  # 1.0 · (0 + 1)/2
    assert m[3, 3] == pytest.approx(0.5) and m[4, 4] == pytest.approx(0.25)
    assert np.count_nonzero(np.isclose(m, 0.5)) == 16  # only the clamped 4×4 corner


def test_empty_regions_and_global_only_are_uniform():
    for g in (-1.0, 0.0, 0.5):
        expected = 0.5 * (g + 1) / 2
        assert np.allclose(build_pixel_map(report(g), "released"), expected)
        assert np.allclose(build_pixel_map(report(g, [((0, 0, 8, 8), 1.0)]), "global-only"), expected)


def test_g_minus_one_zeroes_the_released_map():
    m = build_pixel_map(report(-1.0, [((0, 0, 8, 8), 1.0)]), "released")
    assert np.all(m == 0.0)


def test_missing_global_raises_for_modes_that_need_it_but_not_for_local_only_or_sft():
    r = report(None, [((0, 0, 8, 8), 0.6)])
    for mode in ("released", "signed", "binary", "global-only"):
        with pytest.raises(MissingGlobalScore, match="left out of training"):
            build_pixel_map(r, mode)
    local = build_pixel_map(r, "local-only")
    assert local[0, 0] == pytest.approx(0.8) and local[20, 20] == pytest.approx(0.5)
    assert np.all(build_pixel_map(r, "sft") == 1.0)


def test_failed_region_scores_are_ignored_not_zeroed():
    r = report(1.0, [((0, 0, 8, 8), None)])
    assert np.allclose(build_pixel_map(r, "released"), 0.5)
    assert np.allclose(build_pixel_map(r, "signed"), 0.0)


def test_scores_out_of_range_are_clamped():
    judged = (RegionJudgement(region=Region((0, 0, 8, 8), "t"), object_name="o", score=3.0, parse_status="clamped"),)
    r = RewardReport("p", 16, 16, GlobalJudgement(score=1.0), judged)
    assert build_pixel_map(r, "released")[0, 0] == pytest.approx(1.0)


def test_signed_map_background_zero_and_negative_regions_count():
    r = report(0.5, [((0, 0, 8, 8), -0.8), ((16, 16, 32, 32), 0.6)])
    m = build_pixel_map(r, "signed")
    alpha = 0.75
    assert m[20, 4] == 0.0
    assert m[4, 4] == pytest.approx(alpha * -0.8)
    assert m[20, 20] == pytest.approx(alpha * 0.6)


def test_binary_maps_region_scores_to_plus_minus_one():
    r = report(0.5, [((0, 0, 8, 8), 0.1), ((16, 16, 24, 24), 0.0), ((24, 0, 32, 8), -0.3)])
    m = build_pixel_map(r, "binary")
    assert m[4, 4] == pytest.approx(1.0 * 0.75)  # 0.1 > 0 → 1 → (1+1)/2 · α
    assert m[20, 20] == pytest.approx(0.5 * 0.75)  # 0 is not > 0 → -1 → 0 → below the floor
    assert m[4, 28] == pytest.approx(0.5 * 0.75)
    assert m[12, 12] == pytest.approx(0.5 * 0.75)  # the global score stays continuous


def test_local_only_has_no_global_factor():
    m = build_pixel_map(report(-1.0, [((0, 0, 8, 8), 0.6)]), "local-only")
    assert m[0, 0] == pytest.approx(0.8) and m[31, 31] == pytest.approx(0.5)


def test_thin_box_bilinear_vanishes_but_area_counts():
    # A 2-pixel-wide box in a 16-pixel token, away from the token centre (pixels 7/8).
    r = report(1.0, [((0, 0, 2, 16), 1.0)], width=32, height=32)
    pixel = build_pixel_map(r, "released")
    bilinear = project_to_tokens(pixel, 16, "bilinear")
    area = project_to_tokens(pixel, 16, "area")
    assert bilinear.shape == area.shape == (2, 2)
    assert bilinear[0, 0] == pytest.approx(0.5)  # the box vanished
    assert area[0, 0] == pytest.approx((2 * 16 * 1.0 + 14 * 16 * 0.5) / 256)  # 0.5625: the box still counts
    assert area[1, 1] == pytest.approx(0.5)


def test_bilinear_matches_align_corners_false_sampling():
    # Downscaling by 16 with align_corners=False samples halfway between pixels 7 and 8 of each token.
    pixel = np.zeros((16, 32), dtype=np.float32)
    pixel[:, 7] = 1.0
    token = project_to_tokens(pixel, 16, "bilinear")
    assert token.shape == (1, 2)
    assert token[0, 0] == pytest.approx(0.5) and token[0, 1] == pytest.approx(0.0)


def test_reward_map_token_view_is_row_major_and_size_must_tile():
    r = report(1.0, [((16, 0, 32, 16), 1.0)])
    rm = build_reward_map(r, RewardConfig(mode="released", grid="area"), token_size=16)
    assert rm.token_weights.tolist() == pytest.approx([0.5, 1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="does not tile"):
        build_reward_map(r, RewardConfig(), token_size=12)


def test_srum_loss_returns_both_terms():
    errors = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    weights = torch.tensor([[0.5, 1.0], [0.0, 0.25]])
    terms = srum_loss(errors, weights, lam=0.5)
    assert terms.reward_term.item() == pytest.approx((0.5 + 2.0 + 0.0 + 1.0) / 4)
    assert terms.constraint_term.item() == pytest.approx(0.5 * 2.5)
    assert terms.total.item() == pytest.approx(0.875 + 1.25)
    terms.total.backward()
    assert errors.grad.flatten().tolist() == pytest.approx([0.25, 0.375, 0.125, 0.1875])  # (w + λ) / N


def test_srum_loss_clamps_total_weight_at_zero_for_signed_maps():
    errors = torch.tensor([[2.0, 2.0]])
    weights = torch.tensor([[-0.9, 0.2]])
    terms = srum_loss(errors, weights, lam=0.5)
    assert terms.total.item() >= 0
    assert terms.reward_term.item() == pytest.approx((-0.5 * 2 + 0.2 * 2) / 2)
    assert terms.total.item() == pytest.approx((0.0 * 2 + 0.7 * 2) / 2)
    zero = srum_loss(errors, torch.tensor([[-0.9, 0.2]]), lam=0.0)
    assert zero.constraint_term.item() == 0.0 and zero.total.item() == pytest.approx(0.2)


def test_srum_loss_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same"):
        srum_loss(torch.ones(2, 3), torch.ones(2, 4), 0.5)
