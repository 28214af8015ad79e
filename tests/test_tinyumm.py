"""TinyUMM v2 pieces: tokenizer, patch geometry, the MoT routing, think vs plain conditioning, plans, data, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from srum_core.tinyumm.data import IGNORE, DataConfig, WorldSampler, degrade, draw_scenes, object_wanted, plan_objects
from srum_core.tinyumm.model import TinyUMM, flow_timesteps, patchify, unpatchify
from srum_core.tinyumm.sampling import plan_tensor, plan_text, sample_patches, sample_plans
from srum_core.tinyumm.tokenizer import WordTokenizer
from srum_core.tinyumm.train import TINY, build_model, plan_targets
from srum_core.world.captions import EXACT, CaptionNoise, noisy_caption
from srum_core.world.prompts import compose, make_prompts
from srum_core.world.render import render_scene, sample_scene, scene_matches
from srum_core.world.spec import ObjectSpec

WORDS = ("a", "red", "blue", "circle", "square", "to", "the", "left", "of")


def tiny(seed: int = 0) -> tuple[TinyUMM, WordTokenizer]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, tok = build_model(TINY)
        with torch.no_grad():  # move the zero-initialised gates and heads off zero so every path matters
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return model.eval(), tok


def _text(model, tok, prompts, plans=None):
    ids, mask = tok.encode(prompts)
    if plans is None:
        return model.encode_text(ids, mask)
    plan, plan_mask = plan_tensor(model, plans)
    return model.encode_text(ids, mask, plan, plan_mask)


def _und_outputs(model, tok):
    prompts = ["a red circle and a blue square", "three green triangles"]
    text = _text(model, tok, prompts, [[(0, 0, 0, 0, 0)], [(1, 1, 1, 1, 1), (5, 1, 1, 0, 0)]])
    patches = torch.randn(2, model.n_patches, model.patch_dim, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [20.0, 30.0, 40.0, 60.0]]] * 2)
    out = model.understand(text, patches, boxes)
    out.update({f"plan_{k}": v for k, v in model.plan_logits(text).items()})
    return out


def test_tokenizer_encodes_pads_and_rejects_unknown_words():
    tok = WordTokenizer(WORDS, max_len=6)
    ids, mask = tok.encode(["A red, circle.", ""])
    assert ids.shape == mask.shape == (2, 6)
    assert ids[0, :4].tolist() == [tok.bos_id, tok.vocab.index("a"), tok.vocab.index("red"), tok.vocab.index("circle")]
    assert mask[0].tolist() == [True] * 4 + [False] * 2
    assert mask[1].tolist() == [True] + [False] * 5  # the null prompt is just <bos>
    with pytest.raises(ValueError, match="does not know"):
        tok.ids("a green dog")
    with pytest.raises(ValueError, match="at most 5"):
        tok.ids("a red circle to the left of")


def test_patchify_is_row_major_and_inverted_by_unpatchify():
    img = torch.zeros(1, 3, 64, 64)
    img[0, :, 16:32, 32:48] = 1.0  # token row 1, column 2 of a 16-pixel grid
    p = patchify(img, 16)
    assert p.shape == (1, 16, 768)
    assert torch.nonzero(p.abs().sum(-1))[:, 1].tolist() == [1 * 4 + 2]
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(unpatchify(patchify(x, 16), 16, 64), x)


def test_a_generation_expert_update_leaves_every_understanding_output_bit_identical():
    model, tok = tiny()
    with torch.no_grad():
        before = _und_outputs(model, tok)
        for p in model.gen.parameters():
            p.add_(torch.randn_like(p))
        after = _und_outputs(model, tok)
    assert before.keys() == after.keys() and "region_yes" in before and "plan_slot" in before
    for key in before:
        assert torch.equal(before[key], after[key]), key
    # Every parameter belongs to exactly one expert.
    names_g = {n for n, _ in model.gen.named_parameters()}
    names_u = {n for n, _ in model.und.named_parameters()}
    assert len(names_g) + len(names_u) == len(list(model.parameters()))


def test_understanding_updates_do_move_generation_and_judgements():
    model, tok = tiny()
    x = torch.randn(1, model.n_patches, model.patch_dim)
    t = torch.tensor([0.5])
    with torch.no_grad():
        v0 = model.velocity(_text(model, tok, ["a red circle"]), x, t)
        for p in model.und.layers.parameters():
            p.add_(torch.randn_like(p))
        v1 = model.velocity(_text(model, tok, ["a red circle"]), x, t)
    assert not torch.allclose(v0, v1)  # the generation stream reads the text through the understanding expert


def test_think_mode_conditions_on_the_plan_and_plain_mode_does_not():
    model, tok = tiny()
    x = torch.randn(2, model.n_patches, model.patch_dim)
    t = torch.tensor([0.7, 0.7])
    prompts = ["a red circle", "a red circle"]
    with torch.no_grad():
        plain = model.velocity(_text(model, tok, prompts), x, t)
        think_a = model.velocity(_text(model, tok, prompts, [[(0, 0, 0, 0, 0)], [(0, 0, 0, 0, 0)]]), x, t)
        think_b = model.velocity(_text(model, tok, prompts, [[(15, 0, 0, 0, 0)], [(15, 0, 0, 0, 0)]]), x, t)
        # Understanding never sees a plan: the same judgement with or without one.
        patches = torch.randn(2, model.n_patches, model.patch_dim)
        und_plain = model.understand(_text(model, tok, prompts), patches)["yes"]
        und_think = model.understand(_text(model, tok, prompts, [[(0, 0, 0, 0, 0)], [(3, 1, 1, 1, 1)]]), patches)["yes"]
    assert not torch.allclose(plain, think_a) and not torch.allclose(think_a, think_b)
    torch.testing.assert_close(und_plain, und_think, rtol=1e-5, atol=1e-6)
    # The prompt's own states do not depend on the plan appended after them (prefix-LM).
    a = _text(model, tok, ["a red circle"])
    b = _text(model, tok, ["a red circle"], [[(2, 1, 0, 1, 0), (3, 0, 1, 0, 1)]])
    torch.testing.assert_close(a.hidden, b.hidden[:, : a.hidden.shape[1]], rtol=1e-5, atol=1e-6)


def test_plan_tokens_text_and_targets_hand_made():
    model, _ = tiny()
    objects = [(5, 0, 1, 1, 0), (10, 2, 0, 0, 1)]
    plan, mask = plan_tensor(model, [objects])
    assert plan.shape == (1, model.config.max_plan_len, 5) and mask[0].tolist() == [True] * 4 + [False] * 2
    assert plan[0, 0, 0] == model.n_slots + 1 and plan[0, 3, 0] == model.n_slots  # <think> ... </think>
    targets = plan_targets(model, plan, mask)
    assert targets["slot"][0].tolist() == [5, 10, model.n_slots, IGNORE, IGNORE, IGNORE]
    assert targets["color"][0].tolist() == [0, 2, IGNORE, IGNORE, IGNORE, IGNORE]  # </think> has no attributes
    text = plan_text(model, objects)
    cfg = model.config
    assert text.startswith("<think> slot 5 (row 1, col 1): ") and text.endswith(" </think>")
    assert f"{cfg.sizes[1]} {cfg.colors[0]} {cfg.shapes[1]}" in text


def test_sampled_plans_are_seeded_batch_independent_and_well_formed():
    model, tok = tiny()
    prompts = ["a red circle and a blue square", "three green triangles", "a yellow square"]
    plans = sample_plans(model, tok, prompts, [1, 2, 3], chunk=4)
    again = sample_plans(model, tok, prompts[1:2], [2], chunk=4)
    assert plans[1] == again[0]
    for plan in plans:
        slots = [o[0] for o in plan]
        assert 1 <= len(plan) <= model.config.max_plan_len - 2 and len(set(slots)) == len(slots)
        assert all(0 <= s < model.n_slots for s in slots)


@pytest.mark.parametrize("think", [False, True])
def test_sampling_is_seeded_and_independent_of_batch_company(think):
    model, tok = tiny()
    prompts = ["a red circle", "two blue squares", "a green triangle"]
    plans = sample_plans(model, tok, prompts, [7, 8, 9]) if think else None
    together = sample_patches(model, tok, prompts, [7, 8, 9], steps=3, guidance=2.0, plans=plans, chunk=4)
    alone = sample_patches(model, tok, prompts[:1], [7], steps=3, guidance=2.0,
                           plans=plans[:1] if think else None, chunk=4)
    assert together.shape == (3, model.n_patches, model.patch_dim)
    assert torch.equal(together[0], alone[0])
    other = sample_patches(model, tok, prompts[:1], [70], steps=3, guidance=2.0, plans=plans[:1] if think else None)
    assert not torch.equal(other[0], alone[0])


def test_save_and_reload_reproduce_outputs(tmp_path):
    model, tok = tiny()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vocab"] == list(tok.vocab)
    again = TinyUMM.from_pretrained(str(tmp_path)).eval()
    saved, loaded = model.state_dict(), again.state_dict()
    assert saved.keys() == loaded.keys()
    for key in saved:
        assert torch.equal(saved[key], loaded[key]), key
    x = torch.randn(1, model.n_patches, model.patch_dim)
    with torch.no_grad():
        a = model.velocity(_text(model, tok, ["a red circle"]), x, torch.tensor([0.5]))
        b = again.velocity(_text(again, tok, ["a red circle"]), x, torch.tensor([0.5]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_caption_noise_reaches_generation_data_only():
    noisy = DataConfig(caption_noise=CaptionNoise(swap_colors=1.0, flip_relation=1.0, drop_relation=0.0,
                                                  miscount=1.0, drop_texture=0.0, drop_size=0.0))
    sampler = WorldSampler(noisy, seed=0)
    g = sampler.generation_batch(64, cond_dropout=0.0)
    changed = [t != s.text for t, s in zip(g["texts"], g["specs"])]
    # Every two-colour, relational or counted prompt is miscaptioned; single objects never are.
    for text, spec, diff in zip(g["texts"], g["specs"], changed):
        if spec.category == "single":
            assert not diff
        if spec.relation is not None or spec.category == "numeracy":
            assert diff, text
    u = sampler.understanding_batch(32, torch.Generator().manual_seed(0))
    assert u["texts"] == [s.text for s in u["specs"]]  # understanding always reads the exact prompt
    exact = WorldSampler(DataConfig(caption_noise=EXACT), seed=0).generation_batch(32, cond_dropout=0.0)
    assert exact["texts"] == [s.text for s in exact["specs"]]


def test_noisy_caption_rates_are_the_documented_ones():
    spec = compose([ObjectSpec("circle", "red"), ObjectSpec("square", "blue")], (0, "left of", 1))
    rng = np.random.default_rng(0)
    noise = CaptionNoise(swap_colors=0.4, flip_relation=0.3, drop_relation=0.1)
    counts: dict[str, int] = {}
    for _ in range(4000):
        _, applied = noisy_caption(spec, rng, noise)
        for a in applied:
            counts[a] = counts.get(a, 0) + 1
    assert abs(counts["swap_colors"] / 4000 - 0.4) < 0.03
    assert abs(counts["flip_relation"] / 4000 - 0.3) < 0.03
    assert abs(counts["drop_relation"] / 4000 - 0.1) < 0.02


def test_understanding_labels_agree_with_the_scene():
    sampler = WorldSampler(DataConfig(p_clean=1.0, ghost_p=0.0, box_jitter=0), seed=3)
    u = sampler.understanding_batch(24, torch.Generator().manual_seed(0))
    assert 0 < float(u["yes"].mean()) < 1
    assert torch.equal(u["box_mask"].sum(1) >= 1, torch.ones(24, dtype=torch.bool))
    for i, spec in enumerate(u["specs"]):
        # Positives and their plans describe the same layout: rebuild the scene from the plan and check it.
        from srum_core.world.render import scene_from_slots

        colors, shapes, textures, sizes = sampler.classes
        scene = scene_from_slots([(o[0], colors[o[1]], shapes[o[2]], sizes[o[3]], textures[o[4]]) for o in u["plans"][i]])
        assert scene_matches(spec, scene)
        objects = int(u["region_object"][i].sum())
        assert objects == int(u["object"][i].sum())  # one object per slot, one token per slot


def test_plan_objects_follow_the_prompt_order_and_slots():
    spec = compose([ObjectSpec("circle", "red", count=2), ObjectSpec("square", "blue")])
    scene = sample_scene(spec, np.random.default_rng(1))
    classes = (("red", "yellow", "green", "blue"), ("circle", "square", "triangle"), ("solid", "striped"),
               ("small", "large"))
    plan = plan_objects(spec, scene, classes)
    assert [o[1:3] for o in plan] == [(0, 0), (0, 0), (3, 1)]
    assert plan[0][0] < plan[1][0]  # copies of one kind by slot
    assert len({o[0] for o in plan}) == 3


def test_object_wanted_uses_what_the_prompt_fixes():
    spec = compose([ObjectSpec("circle", "red", size="large"), ObjectSpec("square", "red", size="small")])

    class Obj:
        def __init__(self, shape, color, size, texture="solid"):
            self.shape, self.color, self.size, self.texture = shape, color, size, texture

    assert object_wanted(Obj("circle", "red", "large"), spec)
    assert not object_wanted(Obj("circle", "red", "small"), spec)
    assert not object_wanted(Obj("triangle", "red", "large"), spec)


def test_draw_scenes_is_the_renderer():
    specs = make_prompts("train", None, 20, 4)
    rng = np.random.default_rng(0)
    scenes = [sample_scene(s, rng) for s in specs]
    fast = draw_scenes(scenes)
    for arr, scene in zip(fast, scenes):
        assert np.array_equal(arr, np.asarray(render_scene(scene)))


def test_degrade_keeps_range_and_clean_share_is_identity():
    x = torch.rand(6, 3, 64, 64) * 2 - 1
    out = degrade(x, torch.Generator().manual_seed(0), p_clean=1.0)
    assert torch.equal(out, x)
    out = degrade(x, torch.Generator().manual_seed(0), p_clean=0.0)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1 and not torch.equal(out, x)


def test_flow_timesteps_logit_normal_and_shift():
    t = flow_timesteps(4000, torch.Generator().manual_seed(0))
    assert 0 < float(t.min()) and float(t.max()) < 1 and abs(float(t.median()) - 0.5) < 0.03
    shifted = flow_timesteps(4000, torch.Generator().manual_seed(0), shift=3.0)
    assert float(shifted.median()) > 0.7


def test_tiny_training_end_to_end_is_reproducible(tmp_path):
    from srum_core.tinyumm.train import train

    a = train(TINY, tmp_path / "a")
    b = train(TINY, tmp_path / "b")
    assert a["steps"] == TINY.steps == b["steps"]
    assert a["final_metrics"]["loss"] == pytest.approx(b["final_metrics"]["loss"], rel=1e-4)
    for name in ("config.json", "samples.png", "README.md", "train_summary.json", "training_config.json"):
        assert (tmp_path / "a" / name).is_file()
    config = json.loads((tmp_path / "a" / "training_config.json").read_text())
    assert config["data"]["caption_noise"]["swap_colors"] == TINY.data.caption_noise.swap_colors


def test_learning_rate_warms_up_then_decays_by_cosine_to_the_floor():
    from dataclasses import replace

    from srum_core.tinyumm.train import learning_rate

    cfg = replace(TINY, lr=1e-3, warmup_steps=10, steps=110, lr_min_ratio=0.1)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(cfg, 110) == pytest.approx(1e-4)


def test_train_cli_passes_architecture_data_and_noise_flags(tmp_path):
    from srum_core.tinyumm.train import main

    out = tmp_path / "w"
    assert main(["--tiny", "--out", str(out), "--d-model", "48", "--n-layers", "1", "--noise-scale", "0.5",
                 "--plan-p", "0.25", "--gen-batch", "3", "--und-batch", "2", "--seed", "4"]) == 0
    config = json.loads((out / "training_config.json").read_text())
    assert (config["d_model"], config["n_layers"], config["gen_batch"], config["und_batch"], config["seed"]) == (48, 1, 3, 2, 4)
    assert config["data"]["plan_p"] == 0.25
    assert config["data"]["caption_noise"]["swap_colors"] == pytest.approx(CaptionNoise().swap_colors * 0.5)
    saved = json.loads((out / "config.json").read_text())
    assert saved["d_model"] == 48 and saved["n_layers"] == 1
    with pytest.raises(SystemExit):
        main(["--tiny", "--out", str(out)])  # refuses to overwrite without --force


def test_a_stop_step_ends_training_early_on_the_full_schedule_and_is_checked(tmp_path):
    from dataclasses import replace

    from srum_core.tinyumm.train import RECIPES, train

    assert RECIPES["v3"].stop_step == 2500 and RECIPES["v3"].steps == 3000  # the shipped v3 run, by step
    with pytest.raises(ValueError, match="stop_step=7 must lie in"):
        replace(TINY, stop_step=7)
    summary = train(replace(TINY, stop_step=3), tmp_path / "m")
    assert summary["steps"] == 3
    config = json.loads((tmp_path / "m" / "training_config.json").read_text())
    assert config["stop_step"] == 3 and config["steps"] == TINY.steps
