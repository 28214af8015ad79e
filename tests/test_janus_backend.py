"""The Janus backend on a tiny random Janus saved to disk and loaded back through ``from_pretrained``.

Tiny model: 32×32 images, a 4×4 grid of codes from a 64-entry codebook, 8 px per token.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srum_core.backends.janus import (
    BACKEND_ALIASES,
    JanusBackend,
    draw_numbered_boxes,
    janus_cpu_warning,
    load_janus,
    resolve_model_id,
)
from srum_core.boxes.user import UserBoxes
from srum_core.config import GenerationConfig, JudgeConfig, RewardConfig
from srum_core.protocol import UnifiedModel
from srum_core.rewards import build_reward_map, srum_loss
from srum_core.types import Region, RewardReport
from tests.conftest_janus import build_tiny_janus, build_tiny_sam

GEN = GenerationConfig(guidance=3.0, batch_size=4)


@pytest.fixture(scope="module")
def janus_dir(tmp_path_factory):
    return build_tiny_janus(tmp_path_factory.mktemp("tiny") / "janus")


@pytest.fixture(scope="module")
def backend(janus_dir) -> JanusBackend:
    """Shared read-only backend (tests that train load their own private copy)."""
    return load_janus(str(janus_dir), device="cpu", use_cache=False)


def test_aliases_and_cpu_warning(janus_dir):
    assert resolve_model_id("janus-pro-1b") == BACKEND_ALIASES["janus-pro-1b"] == "deepseek-community/Janus-Pro-1B"
    assert resolve_model_id("Janus-Pro-7B") == "deepseek-community/Janus-Pro-7B"
    assert resolve_model_id(str(janus_dir)) == str(janus_dir)
    warn_1b = janus_cpu_warning("janus-pro-1b", device="cpu")
    warn_7b = janus_cpu_warning("janus-pro-7b", device="cpu")
    assert "minutes per image" in warn_1b and "576" in warn_1b
    # 1.5e9 params · 4 bytes · 576 steps / 20 GB/s ≈ 173 s ≈ 3 minutes; the 7B model ≈ 13 minutes.
    assert "roughly 3 minutes" in warn_1b and "roughly 13 minutes" in warn_7b
    assert janus_cpu_warning(str(janus_dir), device="cpu") is None  # a tiny local model is cheap
    assert janus_cpu_warning("some/other-model", device="cpu") is None


def test_loads_by_path_with_tiny_geometry(janus_dir, backend):
    assert isinstance(backend, UnifiedModel)
    assert backend.image_size == (32, 32) and backend.token_size == 8
    assert backend.token_grid(32, 32) == (4, 4)
    with pytest.raises(ValueError, match="32×32"):
        backend.token_grid(64, 64)
    # Cached loads share weights; use_cache=False gives a private copy.
    a = load_janus(str(janus_dir), device="cpu")
    b = load_janus(str(janus_dir), device="cpu", judge="rubric")
    assert a.model is b.model and b.judge == "rubric"
    assert backend.model is not a.model
    assert backend.dtype == torch.float32
    with pytest.raises(ValueError, match="choose one of likelihood, rubric"):
        load_janus(str(janus_dir), device="cpu", judge="vibes")


def test_generate_seeds_batches_and_payload(backend):
    prompts = ["a red car", "a green bench and a red car", "three dogs"]
    samples = backend.generate(prompts, [1, 2, 3], GEN)
    assert [s.prompt for s in samples] == prompts and [s.seed for s in samples] == [1, 2, 3]
    # The image is the decoded payload (decoded as the same batch: a convolution's rounding may differ by one
    # grey level between batch sizes on some CPUs, so a lone decode is not the reference).
    decoded = backend.decode_codes(torch.stack([s.payload.reshape(-1) for s in samples]))
    for s, pixels in zip(samples, decoded):
        assert s.image.size == (32, 32) and s.image.mode == "RGB"
        assert s.payload.shape == (4, 4) and s.payload.dtype == torch.int64
        assert 0 <= int(s.payload.min()) and int(s.payload.max()) < 64
        assert np.array_equal(np.asarray(s.image), pixels)
    # Same seed → same codes, alone or inside a batch of different prompts; another seed → other codes.
    alone = backend.generate(["a green bench and a red car"], [2], GEN)[0]
    assert torch.equal(alone.payload, samples[1].payload)
    other = backend.generate(["a green bench and a red car"], [99], GEN)[0]
    assert not torch.equal(other.payload, samples[1].payload)
    events = []
    backend.generate(prompts, [1, 2, 3], GenerationConfig(guidance=3.0, batch_size=2), callback=events.append)
    assert [(e.stage, e.step, e.total) for e in events] == [("generate", 2, 3), ("generate", 3, 3)]


def test_guidance_must_exceed_one(backend):
    with pytest.raises(ValueError, match=r"guidance > 1.0"):
        backend.generate(["a red car"], [0], GenerationConfig(guidance=1.0))
    with pytest.raises(ValueError, match="one seed per prompt"):
        backend.generate(["a", "b"], [0], GEN)


def test_our_cfg_loop_equals_transformers_generate_when_greedy(backend):
    """At a vanishing temperature inverse-CDF sampling is argmax: it must match upstream greedy CFG exactly."""
    ids, mask = backend._generation_inputs(["a green bench and a red car"])
    backend.model.generation_config.generation_kwargs = {"boi_token_id": backend._boi_id}
    upstream = backend.model.generate(
        input_ids=ids, attention_mask=mask, generation_mode="image", do_sample=False, guidance_scale=3.0
    )
    ours = backend.sample_codes(["a green bench and a red car"], [0], guidance=3.0, temperature=1e-6)
    assert torch.equal(ours, upstream)


def test_static_and_dynamic_kv_cache_sample_the_same_codes(janus_dir):
    """The preallocated cache is an implementation detail: mixed-length (left-padded) prompts, same codes."""
    prompts = ["a green bench and a red car", "three dogs", "a book on the left of a bird"]
    static = load_janus(str(janus_dir), device="cpu", use_cache=False)
    dynamic = load_janus(str(janus_dir), device="cpu", use_cache=False, kv_cache="dynamic")
    assert static.kv_cache == "static" and dynamic.kv_cache == "dynamic"
    codes = static.sample_codes(prompts, [0, 1, 2], guidance=3.0)
    assert torch.equal(codes, dynamic.sample_codes(prompts, [0, 1, 2], guidance=3.0))
    assert len({tuple(row.tolist()) for row in codes}) == 3
    with pytest.raises(ValueError, match="kv_cache"):
        load_janus(str(janus_dir), device="cpu", use_cache=False, kv_cache="paged")


def test_decoder_output_is_clamped_before_uint8(backend, monkeypatch):
    fake = torch.tensor([[-3.0, -1.0, 0.0], [1.0, 2.5, 0.5]]).view(1, 1, 2, 3).expand(1, 2, 2, 3)
    monkeypatch.setattr(backend.model, "decode_image_tokens", lambda codes: fake)
    out = backend.decode_codes(torch.zeros(1, 16, dtype=torch.long))
    assert out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [0, 0, 128] and out[0, 0, 1].tolist() == [255, 255, 191]


def test_likelihood_judge_matches_hand_computed_yes_no(backend):
    sample = backend.generate(["a red car"], [5], GEN)[0]
    config = JudgeConfig()
    judgement = backend.judge_global(sample.image, "a red car", config)
    # By hand: softmax over the vocabulary at the last position, P(Yes) against P(No).
    inputs = backend._understanding_inputs([sample.image], [config.global_template.format(prompt="a red car")])
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(**inputs).logits[0, -1].float(), -1)
    p_yes, p_no = logp[backend._yes_ids].exp().sum(), logp[backend._no_ids].exp().sum()
    expected = float(2 * p_yes / (p_yes + p_no) - 1)
    assert judgement.parse_status == "ok" and judgement.score == pytest.approx(expected, abs=1e-5)
    assert -1.0 <= judgement.score <= 1.0 and judgement.raw_score == pytest.approx((expected + 1) / 2, abs=1e-5)


@pytest.mark.parametrize("view", ["crop", "boxes", "coords"])
def test_likelihood_region_views(backend, view):
    sample = backend.generate(["a red car"], [5], GEN)[0]
    regions = [Region((0, 0, 16, 16), "user", label="car"), Region((8, 8, 40, 40), "user")]  # second exceeds
    out = backend.judge_regions(sample.image, "a red car", regions, JudgeConfig(region_view=view))
    assert len(out) == 2 and all(j.parse_status == "ok" and -1 <= j.score <= 1 for j in out)
    assert out[1].region.box == (8, 8, 32, 32)  # clamped to the image
    assert out[0].object_name == "car"
    expected_words = {"crop": "this image", "boxes": "box 1", "coords": "[0.00, 0.00, 0.50, 0.50]"}[view]
    assert expected_words in out[0].question
    assert backend.judge_regions(sample.image, "a red car", [], JudgeConfig(region_view=view)) == []


def test_numbered_boxes_are_drawn():
    from PIL import Image

    image = Image.new("RGB", (32, 32), (0, 0, 0))
    drawn = np.asarray(draw_numbered_boxes(image, [Region((4, 4, 20, 20), "user")]))
    assert drawn[4, 10].tolist() == [255, 0, 0] and drawn[19, 10].tolist() == [255, 0, 0]
    assert drawn[28, 28].tolist() == [0, 0, 0]


def test_rubric_judge_keeps_failures_as_failures(janus_dir):
    backend = load_janus(str(janus_dir), device="cpu", judge="rubric", max_new_tokens=12)
    sample = backend.generate(["a red car"], [5], GEN)[0]
    g = backend.judge_global(sample.image, "a red car", JudgeConfig())
    # A random model writes no "Score:" line: the parse fails, the score is None, the text is kept.
    assert g.parse_status == "failed" and g.score is None and not g.usable
    assert "Score: <a number between -1 and 1>" in g.question
    regions = [Region((0, 0, 16, 16), "user"), Region((16, 16, 32, 32), "user")]
    for view in ("crop", "boxes", "coords"):
        out = backend.judge_regions(sample.image, "a red car", regions, JudgeConfig(region_view=view))
        assert len(out) == 2 and all(j.score is None and j.parse_status in ("failed", "missing") for j in out)
        assert "Region ID: 1" in out[0].question


def test_token_losses_are_causal_per_token_cross_entropy(backend):
    samples = backend.generate(["a red car", "two cats"], [1, 2], GEN)
    losses = backend.token_losses(samples, cond_dropout=0.0)
    assert losses.shape == (2, 16) and bool((losses >= 0).all())
    # Teacher forcing is causal: changing code 5 leaves the losses of codes 0..4 and changes later ones.
    changed = samples[0].payload.clone().reshape(-1)
    changed[5] = (changed[5] + 1) % 64
    samples[0].payload = changed.view(4, 4)
    again = backend.token_losses(samples, cond_dropout=0.0)
    assert torch.allclose(again[0, :5], losses[0, :5], atol=1e-6)
    assert not torch.allclose(again[0, 6:], losses[0, 6:])
    assert torch.allclose(again[1], losses[1], atol=1e-6)
    # Prompt dropout is drawn from the generator: the same seed drops the same prompts.
    a = backend.token_losses(samples, torch.Generator().manual_seed(3), cond_dropout=0.5)
    b = backend.token_losses(samples, torch.Generator().manual_seed(3), cond_dropout=0.5)
    assert torch.equal(a, b)
    everything_dropped = backend.token_losses(samples, torch.Generator().manual_seed(3), cond_dropout=0.999)
    assert not torch.allclose(everything_dropped, again)


def test_lora_targets_the_language_model_only(janus_dir):
    from peft import LoraConfig, get_peft_model

    backend = load_janus(str(janus_dir), device="cpu", use_cache=False)
    peft_model = get_peft_model(
        backend.trainable_module(), LoraConfig(r=4, lora_alpha=8, target_modules=backend.lora_target_modules())
    )
    adapted = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and len(getattr(m, "lora_A", {}))]
    assert len(adapted) == 2 * 7  # 2 layers × (q, k, v, o, gate, up, down)
    assert all(".language_model.layers." in n for n in adapted)
    for forbidden in ("vision_model", "aligner", "vqmodel", "generation_head", "generation_embeddings"):
        assert not any(forbidden in n for n in adapted)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_round_trip_generate_judge_map_train_save_reload(janus_dir, tmp_path):
    """generate → propose (user boxes, tiny SAM) → judge → reward map → 2 LoRA steps → save → reload → same codes."""
    from peft import LoraConfig, PeftModel, get_peft_model

    backend = load_janus(str(janus_dir), device="cpu", use_cache=False)
    prompts, seeds = ["a green bench and a red car", "a book on the left of a bird"], [11, 12]
    samples = backend.generate(prompts, seeds, GEN)
    sam_dir = build_tiny_sam(tmp_path / "sam")
    from srum_core.boxes.sam import SamAutomaticBoxes

    sources = [
        UserBoxes([[0, 0, 16, 32], [16, 8, 32, 24]], ["bench", "car"]),
        SamAutomaticBoxes(str(sam_dir), 2, "cpu"),
    ]
    judge = JudgeConfig(region_view="boxes")
    weights = []
    for sample, source in zip(samples, sources):
        regions = source.propose(sample.image, sample.prompt, max_regions=judge.max_regions)
        report = RewardReport(
            prompt=sample.prompt,
            width=32,
            height=32,
            global_judgement=backend.judge_global(sample.image, sample.prompt, judge),
            regions=tuple(backend.judge_regions(sample.image, sample.prompt, regions, judge)),
        )
        reward = build_reward_map(report, RewardConfig(mode="released", grid="area"), backend.token_size)
        assert reward.token.shape == (4, 4)
        weights.append(reward.token_weights)
    weights = torch.tensor(np.stack(weights))

    peft_model = get_peft_model(
        backend.trainable_module(), LoraConfig(r=4, lora_alpha=8, target_modules=backend.lora_target_modules())
    )
    base_before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=5e-2)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(2):
        terms = srum_loss(backend.token_losses(samples, generator), weights, lam=0.5)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(float(terms.total.detach()))
    assert all(np.isfinite(losses))
    after = dict(peft_model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in base_before.items())  # base frozen
    assert any(not torch.equal(after[n], v) for n, v in lora_before.items())  # adapters moved

    trained = backend.generate(prompts, seeds, GEN)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    fresh = load_janus(str(janus_dir), device="cpu", use_cache=False)
    PeftModel.from_pretrained(fresh.trainable_module(), tmp_path / "adapter")
    reloaded = fresh.generate(prompts, seeds, GEN)
    assert all(torch.equal(a.payload, b.payload) for a, b in zip(trained, reloaded))


def test_janus_drives_the_round_engine_unchanged(janus_dir, tmp_path):
    """srum_core.rounds.run_round on the tiny Janus: generate → propose → judge → map → LoRA → run folder."""
    import json

    from srum_core import adapters as A
    from srum_core.config import TrainingConfig
    from srum_core.rounds import RoundConfig, run_round

    backend = load_janus(str(janus_dir), device="cpu", use_cache=False)
    prompt_file = tmp_path / "prompts.jsonl"
    prompt_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["a red car", "two cats", "a blue cup"]))
    config = RoundConfig(
        prompts=str(prompt_file),
        n_prompts=3,
        seed=5,
        generation=GenerationConfig(guidance=3.0, batch_size=2),
        judge=JudgeConfig(region_view="boxes", max_regions=4),
        reward=RewardConfig(grid="area"),
        training=TrainingConfig(steps=2, lr=1e-2, batch_size=2, lora_rank=4),
        eval_split=None,
        n_fixed_samples=1,
    )
    result = run_round(backend, config, tmp_path / "run")
    assert result.n_samples == 3 and result.n_trained == 3 and result.train.steps == 2
    assert A.adapter_kind(backend) == "lora"
    assert any(float(v.abs().sum()) > 0 for k, v in A.adapter_state(backend).items() if "lora_B" in k)
    assert (tmp_path / "run").is_dir()
