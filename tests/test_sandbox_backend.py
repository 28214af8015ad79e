"""The sandbox backend (TinyUMM v2) against the UnifiedModel contract, on a tiny random model (and shipped weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srum_core.backends.sandbox import DEFAULT_WEIGHTS, SandboxBackend, load_sandbox
from srum_core.config import GenerationConfig, JudgeConfig
from srum_core.protocol import UnifiedModel
from srum_core.types import Region, Sample

GEN = GenerationConfig(steps=3, guidance=2.0)


@pytest.fixture(scope="module")
def backend() -> SandboxBackend:
    b = SandboxBackend.from_random(seed=0, tiny=True)
    with torch.no_grad(), torch.random.fork_rng():  # nudge the zero-initialised heads so outputs vary
        torch.manual_seed(1)
        for p in b.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return b


def test_contract_and_grid(backend):
    assert isinstance(backend, UnifiedModel)
    assert backend.name == "sandbox" and backend.image_size == (64, 64) and backend.token_size == 16
    assert backend.token_grid(64, 64) == (4, 4)
    with pytest.raises(ValueError, match="64x64"):
        backend.token_grid(128, 128)
    assert list(backend.box_sources())[0] == "segmenter" and "self-grounding" in backend.box_sources()
    assert backend.lora_target_modules() == ["to_qkv", "to_out", "fc1", "fc2"]
    assert backend.generation_modes == ("plain", "think")


@pytest.mark.parametrize("mode", ["plain", "think"])
def test_generate_is_deterministic_and_batch_independent(backend, mode):
    gen = GenerationConfig(steps=3, guidance=2.0, mode=mode)
    a = backend.generate(["a red circle"], [3], gen)
    b = backend.generate(["a blue square", "a red circle"], [9, 3], gen)
    assert np.array_equal(np.asarray(a[0].image), np.asarray(b[1].image))
    assert a[0].image.size == (64, 64) and a[0].seed == 3 and a[0].settings["mode"] == mode
    assert ("plan" in a[0].settings) == (mode == "think")
    if mode == "think":
        assert a[0].settings["plan"] == b[1].settings["plan"] and a[0].settings["plan"].startswith("<think>")
    # The payload is the pixel-patch tensor of the saved image, as a trainer would read it from disk.
    from srum_core.tinyumm.model import patchify

    arr = torch.from_numpy(np.array(a[0].image)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(a[0].payload, patchify(arr[None], 16)[0])


def test_plain_and_think_differ_and_unknown_modes_are_refused(backend):
    plain = backend.generate(["a red circle and a blue square"], [5], GenerationConfig(steps=3, mode="plain"))[0]
    think = backend.generate(["a red circle and a blue square"], [5], GenerationConfig(steps=3, mode="think"))[0]
    assert not np.array_equal(np.asarray(plain.image), np.asarray(think.image))
    with pytest.raises(ValueError, match="mode"):
        GenerationConfig(mode="dream")
    with pytest.raises(ValueError, match="does not know"):
        backend.generate(["a purple cat"], [0], GEN)


def test_token_losses_shape_grad_and_seeding(backend):
    samples = backend.generate(["a red circle", "two blue squares"], [1, 2], GEN)
    backend.model.gen.requires_grad_(True)
    try:
        e1 = backend.token_losses(samples, torch.Generator().manual_seed(0))
        e2 = backend.token_losses(samples, torch.Generator().manual_seed(0))
        assert e1.shape == (2, 16) and e1.requires_grad and torch.equal(e1, e2)
        e1.mean().backward()
        assert all(p.grad is not None for p in backend.model.gen.parameters() if p.requires_grad)
        assert all(p.grad is None for p in backend.model.und.parameters())  # the frozen judge gets no gradient
    finally:
        backend.model.gen.requires_grad_(False)
        backend.model.zero_grad(set_to_none=True)
    # A sample read back from disk (no payload) trains on the same tokens.
    again = [Sample(prompt=s.prompt, seed=s.seed, image=s.image) for s in samples]
    with torch.no_grad():
        assert torch.allclose(backend.token_losses(again, torch.Generator().manual_seed(0)),
                              backend.token_losses(samples, torch.Generator().manual_seed(0)))


def test_judge_global_is_the_learned_head_and_explains_itself(backend):
    image = backend.generate(["a red circle"], [0], GEN)[0].image
    verdict = backend.judge_global(image, "a red circle", JudgeConfig())
    p = backend.read([image], ["a red circle"])[0].p_yes
    assert verdict.score == pytest.approx(2 * p - 1, abs=1e-6) and verdict.parse_status == "ok"
    assert verdict.reason.startswith("I see ") and "P(yes)" in verdict.reason
    assert "a red circle" in verdict.question and verdict.raw_text.startswith("Q: ")
    assert backend.global_judge == "learned"


def test_grounded_judge_stays_available_and_only_lowers_the_learned_score(backend):
    from srum_core.backends.sandbox import FAILED_CHECK_FACTOR, grounded_checks
    from srum_core.world.prompts import parse_prompt

    image = backend.generate(["a red circle"], [0], GEN)[0].image
    learned = backend.judge_global(image, "a red circle", JudgeConfig())
    try:
        backend.global_judge = "grounded"
        grounded = backend.judge_global(image, "a red circle", JudgeConfig())
    finally:
        backend.global_judge = "learned"
    n_failed = sum(not ok for ok in grounded_checks(backend.ground(image, "a red circle"),
                                                    parse_prompt("a red circle")).values())
    p = (learned.score + 1) / 2
    assert grounded.score == pytest.approx(2 * p * FAILED_CHECK_FACTOR**n_failed - 1, abs=1e-6)
    assert "Checks:" in grounded.raw_text and "Checks:" not in learned.raw_text


def test_judge_regions_one_pass_names_and_invisible_region(backend):
    img = backend.generate(["a red circle and a blue square"], [1], GEN)[0].image
    regions = [Region((0, 0, 16, 16), "user"), Region((20, 20, 50, 44), "user"), Region((70, 70, 90, 90), "user")]
    out = backend.judge_regions(img, "a red circle and a blue square", regions, JudgeConfig())
    assert [j.region for j in out] == regions
    assert out[2].score is None and out[2].parse_status == "failed"
    for j in out[:2]:
        assert -1 <= j.score <= 1 and j.object_name and "Identified Object:" in j.raw_text
    # Judged together or one at a time: the same scores (region queries do not see each other).
    alone = backend.judge_regions(img, "a red circle and a blue square", regions[1:2], JudgeConfig())
    assert alone[0].score == pytest.approx(out[1].score, abs=1e-5)
    # The region view does not change how the sandbox model reads a box.
    coords = backend.judge_regions(img, "a red circle and a blue square", regions[:2], JudgeConfig(region_view="coords"))
    assert [c.score for c in coords] == pytest.approx([o.score for o in out[:2]], abs=1e-6)


def test_self_grounding_finds_components_of_its_own_heads(backend, monkeypatch):
    from srum_core.backends.sandbox import PatchReading

    obj = np.zeros((4, 4))
    obj[0, 0] = obj[0, 1] = obj[3, 3] = 0.9
    col = np.full((4, 4, 4), 0.01)
    col[..., 0] = 0.97  # red everywhere
    shp = np.full((4, 4, 3), 0.01)
    shp[..., 0] = 0.98
    shp[3, 3] = [0.01, 0.98, 0.01]  # a square in the corner
    tex = np.zeros((4, 4, 2))
    tex[..., 0] = 1.0
    size = np.zeros((4, 4, 2))
    size[..., 1] = 1.0
    hand = PatchReading(0.9, obj, col, shp, tex, size)
    found = backend.ground(Image.new("RGB", (64, 64)), "", reading=hand)
    boxes = sorted(f.box for f in found)
    assert boxes == [(0, 0, 32, 16), (48, 48, 64, 64)]
    assert {f.name for f in found} == {"large red circle", "large red square"}


def test_train_part_switches_the_trainable_module_and_restores_the_base_of_the_other_part(backend):
    from srum_core.config import TrainingConfig

    b = SandboxBackend.from_random(seed=1)
    assert b.trainable_module() is b.model.gen
    b.set_train_part("all")
    assert b.trainable_module() is b.model
    b.set_train_part("gen")
    with pytest.raises(ValueError, match="train_part"):
        b.set_train_part("judge")
    from srum_core.adapters import adapter_kind, attach_adapter

    before = {k: v.clone() for k, v in b.model.state_dict().items()}
    attach_adapter(b, TrainingConfig(full_finetune=True))
    with torch.no_grad():
        next(b.model.gen.parameters()).add_(1.0)  # as a round would change the generation expert
    b.set_train_part("all")  # the generation expert's adapter comes off: its base weights are back
    assert adapter_kind(b) is None and b.trainable_module() is b.model
    after = b.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lora_on_the_generation_expert_only(backend):
    peft = pytest.importorskip("peft")
    model = SandboxBackend.from_random(seed=0).model
    cfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=backend.lora_target_modules())
    peft.inject_adapter_in_model(cfg, model.gen)
    names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert names and all(n.startswith("gen.") for n in names)
    assert len(names) == 2 * 4 * model.config.n_layers  # A and B for four Linear layers per layer


@pytest.mark.skipif(not (DEFAULT_WEIGHTS / "config.json").is_file(), reason="shipped weights not present")
def test_shipped_weights_draw_single_objects_the_referee_accepts():
    from srum_core.world.prompts import parse_prompt
    from srum_core.world.referee import verify

    b = load_sandbox(device="cpu")
    assert load_sandbox(device="cpu").model is b.model  # cached per process
    prompt = "a red square"
    samples = b.generate([prompt] * 8, list(range(8)), GenerationConfig(steps=20, guidance=3.0))
    passed = sum(verify(s.image, parse_prompt(prompt)).passed for s in samples)
    # A floor that catches a broken sampling path or broken weights, not the quality target (see the card).
    assert passed >= 6, f"only {passed}/8 images pass the referee"


def test_grounded_checks_read_the_prompt_against_the_models_own_findings():
    from srum_core.backends.sandbox import Grounded, grounded_checks
    from srum_core.world.prompts import parse_prompt

    red_left = Grounded("red", "circle", "solid", (0, 24, 16, 40), 0.9)
    blue_right = Grounded("blue", "square", "solid", (40, 24, 56, 40), 0.9)
    spatial = parse_prompt("a red circle to the left of a blue square")
    assert all(grounded_checks([red_left, blue_right], spatial).values())
    swapped = grounded_checks([Grounded("red", "circle", "solid", blue_right.box, 0.9),
                               Grounded("blue", "square", "solid", red_left.box, 0.9)], spatial)
    assert [k for k, ok in swapped.items() if not ok] == ["a red circle left of a blue square"]
    extra = grounded_checks([red_left, blue_right, Grounded("green", "triangle", "solid", (0, 0, 8, 8), 0.8)], spatial)
    assert [k for k, ok in extra.items() if not ok] == ["nothing else (also green triangle)"]
    count = grounded_checks([Grounded("green", "square", "solid", (0, 0, 8, 8), 0.9)], parse_prompt("two green squares"))
    assert count == {"two green squares (found 1)": False, "nothing else": True}
