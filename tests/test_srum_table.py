"""The SRUM experiment runner: paired statistics against hand-computed cases, each arm's weights on a fixed toy
batch, and resumption (a measured arm is never run again)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments.srum_table import ARMS, arm_spec, arm_training_set, contrast_only, oracle_report
from srum_core.stats import auroc, balanced_accuracy, paired_bootstrap
from srum_core.types import GlobalJudgement, Region, RegionJudgement, RewardReport, Sample


def test_balanced_accuracy_and_auroc_hand_computed():
    truth = [True, True, False, False, False, False]
    # Recall on positives 1/2, on negatives 3/4: balanced 0.625 (raw agreement would be 4/6).
    assert balanced_accuracy(truth, [True, False, False, False, False, True]) == pytest.approx(0.625)
    assert balanced_accuracy([True, True], [True, False]) is None  # one class only
    # Positives score 0.9 and 0.4, negatives 0.8, 0.3, 0.2, 0.1: 7 of 8 pairs ordered right.
    assert auroc(truth, [0.9, 0.4, 0.8, 0.3, 0.2, 0.1]) == pytest.approx(7 / 8)
    assert auroc([True, False], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert auroc([False, False], [0.1, 0.2]) is None


def test_paired_bootstrap_hand_computed_cases():
    # Every item improves by exactly 1: no resample can say otherwise.
    same = paired_bootstrap([0, 0, 0, 0], [1, 1, 1, 1], n_resamples=300)
    assert (same.delta, same.low, same.high) == (1.0, 1.0, 1.0)
    # Two items with differences 0 and 1: resampled means are 0, 0.5, 1 with chances 1/4, 1/2, 1/4, so the
    # central 95% runs from 0 to 1 and the mean difference is 0.5.
    two = paired_bootstrap([0, 0], [0, 1], n_resamples=4000, seed=3)
    assert two.delta == 0.5 and two.low == 0.0 and two.high == 1.0
    # Resampling within clusters keeps each cluster's size: cluster A all 0, cluster B all 1 → every mean is 0.5.
    clustered = paired_bootstrap([0, 0, 0, 0], [0, 0, 1, 1], clusters=[0, 0, 1, 1], n_resamples=500)
    assert (clustered.low, clustered.high) == (0.5, 0.5)
    # Deterministic from its seed; refuses mismatched arms.
    assert paired_bootstrap([0, 1, 0], [1, 1, 0], seed=7) == paired_bootstrap([0, 1, 0], [1, 1, 0], seed=7)
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap([0, 1], [1])


def _report(g: float, regions: list[tuple[tuple[int, int, int, int], float]]) -> RewardReport:
    return RewardReport(
        prompt="a red circle",
        width=64,
        height=64,
        global_judgement=GlobalJudgement(score=g, parse_status="ok", raw_score=g),
        regions=tuple(RegionJudgement(region=Region(box, "test"), object_name="x", score=s, raw_score=s)
                      for box, s in regions),
    )


@pytest.fixture()
def toy():
    """A good image (g = 0.8, its object scored 1.0) and a bad one (g = -0.6, its object scored -1.0)."""
    samples = [Sample(prompt="a red circle", seed=i, image=None) for i in range(2)]
    reports = [_report(0.8, [((0, 0, 16, 16), 1.0)]), _report(-0.6, [((16, 16, 32, 32), -1.0)])]
    oracle = [_report(1.0, [((0, 0, 16, 16), 1.0)]), _report(1.0, [((16, 16, 32, 32), 1.0)])]
    renders = [Sample(prompt="a red circle", seed=i, image="render") for i in range(2)]
    return samples, reports, oracle, renders


def _weights(name: str, toy, token_size: int = 16):
    samples, reports, oracle, renders = toy
    arm = arm_spec(name, "released", "bilinear", 0.5)
    return arm, *arm_training_set(arm, samples, reports, token_size, oracle, renders)


def test_every_arm_on_a_fixed_toy_batch(toy):
    g_good, g_bad = (0.8 + 1) / 2, (-0.6 + 1) / 2
    arm, used, w = _weights("srum", toy)
    assert (arm.mode, arm.lam, arm.judge, arm.data, arm.gate) == ("released", 0.5, "self", "self", None)
    # Released map on the 4x4 token grid: background 0.5·α; the good image's object token (0,0) max(0.5, 1)·α.
    assert w.shape == (2, 16)
    assert w[0, 0] == pytest.approx(1.0 * g_good) and w[0, 5] == pytest.approx(0.5 * g_good)
    assert w[1, 5] == pytest.approx(0.5 * g_bad)  # a negative region score has no effect in the released map
    _, _, sft = _weights("sft", toy)
    assert np.all(sft == 1.0)
    _, _, signed = _weights("signed", toy)
    assert signed[0, 0] == pytest.approx(g_good * 1.0) and signed[0, 5] == pytest.approx(0.0)
    assert signed[1, 5] == pytest.approx(-1.0 * g_bad)  # the paper's form keeps the negative region
    _, _, glob = _weights("global-only", toy)
    assert np.allclose(glob[0], 0.5 * g_good) and np.allclose(glob[1], 0.5 * g_bad)
    _, _, local = _weights("local-only", toy)
    assert local[0, 0] == pytest.approx(1.0) and local[0, 5] == pytest.approx(0.5)
    _, _, binary = _weights("binary", toy)
    assert binary[0, 0] == pytest.approx(1.0 * g_good)
    lam0, _, w0 = _weights("lam0", toy)
    assert lam0.lam == 0.0 and np.allclose(w0, w)  # same map, no constraint term
    area, _, _ = _weights("area-grid", toy)
    assert area.grid == "area"
    oracle, _, wo = _weights("oracle", toy)
    assert oracle.judge == "referee" and wo[1, 5] == pytest.approx(1.0) and wo[1, 5] > w[1, 5]
    renders, used_r, wr = _weights("renders", toy)
    assert [s.image for s in used_r] == ["render", "render"] and np.all(wr == 1.0)
    gated, used_g, wg = _weights("gated", toy)
    assert gated.gate == 0.0 and [s.seed for s in used_g] == [0] and np.allclose(wg[0], w[0])
    base = arm_spec("base", "released", "bilinear", 0.5)
    assert not base.trains
    assert set(ARMS) == {"base", "sft", "srum", "signed", "binary", "global-only", "local-only", "lam0", "area-grid",
                         "oracle", "renders", "gated", "filtered", "contrast"}
    with pytest.raises(ValueError, match="unknown arm"):
        arm_spec("dpo", "released", "bilinear", 0.5)


def test_oracle_report_turns_the_referee_into_the_same_map():
    report = _report(0.9, [((0, 0, 16, 16), 0.9), ((32, 32, 48, 48), 0.9), ((50, 0, 60, 8), 0.9)])
    detections = [{"box": [1, 1, 15, 15], "shape": "circle", "color": "red", "size": "small", "texture": "solid"},
                  {"box": [33, 33, 47, 47], "shape": "square", "color": "blue", "size": "small", "texture": "solid"}]
    from srum_core.world.prompts import parse_prompt

    out = oracle_report(report, passed=False, detections=detections, spec=parse_prompt("a red circle"))
    assert out.global_judgement.score == -1.0
    assert [r.score for r in out.regions] == [1.0, -1.0, -1.0]  # wanted, unwanted, nothing under the box
    assert [r.region for r in out.regions] == [r.region for r in report.regions]


def test_runner_resumes_without_training_again(tmp_path, monkeypatch):
    import experiments.srum_table as table
    from srum_core.backends.sandbox import _CACHE, SandboxBackend

    weights = tmp_path / "w"
    SandboxBackend.from_random(0).model.save_pretrained(str(weights))
    args = ["--weights", str(weights), "--seeds", "0", "--arms", "base", "sft", "srum", "--per-category", "1",
            "--n-prompts", "4", "--steps", "1", "--threads", "1", "--bootstrap", "50", "--sets", "eval",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out.json")]
    trained = []
    import srum_core.training as training

    original = training.train_on_samples

    def counting(*a, **k):
        trained.append(1)
        return original(*a, **k)

    monkeypatch.setattr(training, "train_on_samples", counting)
    _CACHE.clear()
    try:
        assert table.main(args) == 0
        first = json.loads((tmp_path / "out.json").read_text())
        assert len(trained) == 2  # sft and srum
        assert table.main(args) == 0
        assert len(trained) == 2  # nothing trained again
        again = json.loads((tmp_path / "out.json").read_text())
    finally:
        _CACHE.clear()
    assert first["arms"] == again["arms"]
    assert set(first["arms"]) == {"base", "sft", "srum"}
    row = first["arms"]["srum"]
    for key in ("delta_vs_base", "ci95_vs_base", "delta_vs_sft", "ci95_vs_sft", "n_images", "seeds", "per_category"):
        assert key in row
    assert row["n_images"] == 7 and row["seeds"] == [0]
    # Another recipe in the same cache is refused, not mixed in.
    with pytest.raises(SystemExit, match="another recipe"):
        table.main([*args, "--lr", "0.5"])


def test_paired_referee_change_pairs_items_by_prompt_and_seed():
    from srum_core.evaluation import EvalItem, EvalResult, paired_referee_change

    def result(passes):
        items = tuple(EvalItem(prompt=p, category="single", seed=s, referee_pass=v, judge_score=None, judge_pass=None)
                      for (p, s), v in passes.items())
        return EvalResult(split="eval", judge="j", referee="r", seeds=(0,), n_prompts=1, prompt_seed=0,
                          per_category={}, overall=None, items=items)

    before = result({("a", 0): False, ("a", 1): False, ("b", 0): True, ("c", 0): None})
    after = result({("b", 0): True, ("a", 1): True, ("a", 0): False, ("d", 0): True})
    change = paired_referee_change(before, after, n_resamples=500)
    assert change["n"] == 3  # ("c", 0) had no verdict before, ("d", 0) was not measured before
    assert change["before"] == pytest.approx(100 / 3) and change["after"] == pytest.approx(200 / 3)
    assert change["delta"] == pytest.approx(100 / 3)
    assert change["ci95"][0] <= change["delta"] <= change["ci95"][1]
    assert paired_referee_change(result({("a", 0): None}), after) is None


def test_runs_tab_draws_the_committed_result_with_its_intervals(tmp_path):
    from workbench.tabs.runs import srum_result_figure

    row = {"delta_vs_base": 4.0, "ci95_vs_base": [1.0, 6.5], "accuracy": 50.0,
           "per_category": {"color": {"delta_vs_base": 2.0, "ci95_vs_base": [-1.0, 5.0]},
                            "shape": {"delta_vs_base": 6.0, "ci95_vs_base": [3.0, 9.0]}}}
    data = {"arms": {"base": {"delta_vs_base": 0.0, "ci95_vs_base": [0.0, 0.0]}, "srum": {**row, "transfer": row},
                     "oracle": {**row, "delta_vs_base": 7.0, "ci95_vs_base": [5.0, 8.0], "transfer": None}},
            "config": {"seeds": [0, 1, 2]}}
    path = tmp_path / "sandbox_srum.json"
    path.write_text(json.dumps(data))
    figure, caption = srum_result_figure("eval", path)
    overall = figure.data[0]
    assert list(overall.x) == ["srum", "oracle"] and list(overall.y) == [4.0, 7.0]  # base is the reference
    assert list(overall.error_y.array) == [2.5, 1.0] and list(overall.error_y.arrayminus) == [3.0, 2.0]
    assert "3 round seeds" in caption
    transfer, _ = srum_result_figure("transfer", path)
    assert list(transfer.data[0].x) == ["srum"]  # an arm without a transfer measurement is left out, not zero
    missing, why = srum_result_figure("eval", tmp_path / "none.json")
    assert missing is None and "experiments.srum_table" in why
    with pytest.raises(ValueError):
        srum_result_figure("train", path)


def test_the_train_tab_states_the_rounds_referee_change_with_its_interval():
    from workbench.tabs.train import referee_change_note

    summary = {"referee_change/n": 28, "referee_change/before": 45.0, "referee_change/after": 48.5,
               "referee_change/delta": 3.5, "referee_change/ci95_low": -2.25, "referee_change/ci95_high": 9.0}
    note = referee_change_note(summary)
    assert "same 28 evaluation images" in note and "45.0% → 48.5%" in note
    assert "Δ +3.5 points" in note and "[-2.2, +9.0]" in note
    assert referee_change_note({}) == ""  # no evaluation this round: nothing claimed


def test_filtered_arm_keeps_only_the_images_the_referee_passes(toy):
    samples, reports, oracle, renders = toy
    arm = arm_spec("filtered", "released", "bilinear", 0.5)
    used, w = arm_training_set(arm, samples, reports, 16, oracle, renders, passed=[False, True])
    assert [s.seed for s in used] == [1] and np.all(w == 1.0)
    with pytest.raises(ValueError, match="referee's verdicts"):
        arm_training_set(arm, samples, reports, 16, oracle, renders)


def test_contrast_arm_keeps_srum_ratios_at_sfts_mean_weight(toy):
    samples, reports, oracle, renders = toy
    _, _, srum = _weights("srum", toy)
    arm = arm_spec("contrast", "released", "bilinear", 0.5)
    _, w = arm_training_set(arm, samples, reports, 16, oracle, renders)
    total, total_srum = w + 0.5, srum + 0.5
    # Every image's mean per-token loss weight is SFT's (1 + λ) ...
    assert np.allclose(total.mean(axis=1), 1.5)
    # ... and the ratios between its tokens are SRUM's.
    assert np.allclose(total / total[:, :1], total_srum / total_srum[:, :1])
    assert not np.allclose(w, srum)  # the scale did change: the bad image is no longer down-weighted overall
    # A degenerate image with no weight at all falls back to SFT's uniform weight.
    assert np.allclose(contrast_only(np.full((1, 4), -0.5, dtype=np.float32), 0.5), 1.0)


def test_committed_headline_states_srum_sft_and_their_difference(tmp_path):
    from workbench.tabs.runs import committed_headline

    assert committed_headline(tmp_path / "none.json") == "" and committed_headline(None) == ""
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"config": {"seeds": [0, 1]}, "arms": {
        "srum": {"n_images": 1400, "delta_vs_base": 3.0, "ci95_vs_base": [1.0, 5.0], "delta_vs_sft": 2.0,
                 "ci95_vs_sft": [0.5, 3.5]},
        "sft": {"n_images": 1400, "delta_vs_base": 1.0, "ci95_vs_base": [-1.0, 3.0]}}}))
    line = committed_headline(path)
    assert "1400 paired images" in line and "[0, 1]" in line
    assert "SRUM vs base +3.0 [+1.0, +5.0]" in line and "SFT vs base +1.0 [-1.0, +3.0]" in line
    assert "SRUM − SFT +2.0 [+0.5, +3.5]" in line


def test_incremental_rounds_keep_round_one_as_the_headline_and_list_every_round(tmp_path):
    import experiments.srum_table as table
    from srum_core.backends.sandbox import _CACHE, SandboxBackend

    weights = tmp_path / "w"
    SandboxBackend.from_random(0).model.save_pretrained(str(weights))
    args = ["--weights", str(weights), "--seeds", "0", "--arms", "base", "sft", "srum", "--per-category", "1",
            "--n-prompts", "4", "--steps", "1", "--threads", "1", "--bootstrap", "50", "--sets", "eval",
            "--rounds", "2", "--incremental-arms", "srum", "sft",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out.json")]
    _CACHE.clear()
    try:
        assert table.main(args) == 0
    finally:
        _CACHE.clear()
    summary = json.loads((tmp_path / "out.json").read_text())
    srum = summary["arms"]["srum"]
    assert set(srum["by_round"]) == {"round 1", "round 2"}
    assert srum["accuracy"] == srum["by_round"]["round 1"]["eval"]["accuracy"]  # the headline is one round
    assert "delta_vs_sft" in srum["by_round"]["round 2"]["eval"]  # against sft's own round 2
    assert "round 2:srum" in summary["judge"] and "round 2:sft" in summary["judge"]
    text = (tmp_path / "out.md").read_text()
    assert "Incremental rounds" in text and "| srum | 2 |" in text and "| sft | 2 |" in text
