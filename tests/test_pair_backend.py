"""The pair backend on tiny random SD3, FLUX.1 and Sana pipelines and a tiny random Qwen2.5-VL, saved to disk and loaded
back by path through the backend's own ``from_pretrained`` code.

Tiny models: 32×32 images; VAEs ×4 with 4 latent channels, so an 8×8 latent; SD3 patches of 2 and FLUX's 2×2
packing → 8 px per token (a 4×4 grid), Sana's 1-patches → 4 px (8×8). The judge sees a 32×32 image as 56×56 (its
14-px patch grid).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from srum_core import adapters as A
from srum_core.backends.pair import (
    DIFFUSERS_LORA_FILE,
    GROUNDING_REQUEST,
    PRESETS,
    PairBackend,
    estimate_memory_gb,
    load_pair,
    pair_cpu_warning,
    parse_grounding,
    resolve_generator,
    resolve_judge,
    split_pair_name,
    to_frame,
    token_errors,
)
from srum_core.config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig
from srum_core.protocol import UnifiedModel
from srum_core.rewards import build_reward_map
from srum_core.types import GlobalJudgement, Region, RegionJudgement, RewardReport
from tests.conftest_pair import build_tiny_flux, build_tiny_qwen25vl, build_tiny_sana, build_tiny_sd3

GEN = GenerationConfig(steps=2, guidance=3.0, batch_size=4)
# Per family: pipeline class, latent pixels per token side, pixels per token, its scheduler.
FAMILIES = {
    "sd3": ("StableDiffusion3Pipeline", 2, 8, "FlowMatchEulerDiscreteScheduler"),
    "flux": ("FluxPipeline", 2, 8, "FlowMatchEulerDiscreteScheduler"),
    "sana": ("SanaPipeline", 1, 4, "DPMSolverMultistepScheduler"),
}
FAST = {"max_global_tokens": 6, "max_region_tokens": 6, "max_grounding_tokens": 6}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    return {
        "sd3": build_tiny_sd3(root / "sd3"),
        "flux": build_tiny_flux(root / "flux"),
        "sana": build_tiny_sana(root / "sana"),
        "judge": build_tiny_qwen25vl(root / "qwen25vl"),
    }


def _load(models, family: str = "sd3", **options) -> PairBackend:
    options = {"judge_mode": "likelihood", **FAST, **options}
    return load_pair(str(models[family]), str(models["judge"]), device="cpu", use_cache=False, image_size=32, **options)


@pytest.fixture(scope="module")
def sd3(models) -> PairBackend:
    """Shared read-only SD3 backend (tests that train load their own private copy)."""
    return _load(models, "sd3")


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_presets_aliases_and_memory_estimates():
    assert resolve_generator("sd35-medium") == "stabilityai/stable-diffusion-3.5-medium"
    assert resolve_judge("qwen25vl-7b") == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert resolve_generator("/models/mine") == "/models/mine"
    assert split_pair_name("sd35-medium+qwen25vl-7b") == ("sd35-medium", "qwen25vl-7b")
    assert split_pair_name("flux-dev+Qwen/Qwen2.5-VL-3B-Instruct") == ("flux-dev", "Qwen/Qwen2.5-VL-3B-Instruct")
    with pytest.raises(ValueError, match="preset"):
        split_pair_name("sd35-medium")
    assert {"sd35-medium+qwen25vl-7b", "flux-dev+qwen25vl-7b"} <= set(PRESETS)
    for preset in PRESETS.values():
        assert not preset.measured  # until a GPU run measures them
        assert 10 < preset.memory(512) < preset.memory(1024) < 200
    # bf16 weights 16.3 + 16.6 GB, activations of one 512² training image ≈ 1.6 GB, + 2 GB.
    assert estimate_memory_gb("sd35-medium", "qwen25vl-7b", 512) == pytest.approx(36.9, abs=0.1)
    assert estimate_memory_gb("sd35-medium", "qwen25vl-7b", 512, offload="swap") < 24
    with pytest.raises(ValueError, match="named models only"):
        estimate_memory_gb("/models/mine", "qwen25vl-7b", 512)


def test_registry_cli_listing_and_the_apps_cpu_refusal(models, capsys):
    import subprocess
    import sys
    from pathlib import Path

    from srum_core import cli
    from srum_core.backends import cpu_warning, load_backend, split_backend_name

    assert split_backend_name("pair:flux-dev+qwen25vl-7b") == ("pair", "flux-dev+qwen25vl-7b")
    with pytest.raises(ValueError, match="needs a generator and a judge"):
        load_backend("pair", device="cpu")
    with pytest.raises(ValueError, match="only for --backend pair"):
        load_backend("sandbox", device="cpu", generator="x")
    warning = cpu_warning("pair:flux-dev+qwen25vl-7b", device="cpu")
    assert "minutes per image" in warning and "GPU" in warning
    assert pair_cpu_warning(str(models["sd3"]), str(models["judge"]), device="cpu") is None  # tiny: cheap
    assert cpu_warning("pair", "cpu", generator=str(models["sd3"]), judge=str(models["judge"])) is None
    backend = load_backend(
        "pair", device="cpu", generator=str(models["sd3"]), judge=str(models["judge"]), judge_mode="likelihood"
    )
    assert isinstance(backend, PairBackend) and backend.judge_mode == "likelihood"

    assert cli.main(["backends"]) == 0
    listing = capsys.readouterr().out
    assert "pair:PRESET" in listing and "sd35-medium+qwen25vl-7b" in listing and "estimated" in listing

    result = subprocess.run(
        [sys.executable, "app.py", "--backend", "pair:sd35-medium+qwen25vl-7b", "--device", "cpu"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert result.returncode == 2 and "minutes per image" in result.stderr and "--allow-slow-cpu" in result.stderr


@pytest.mark.parametrize("family", list(FAMILIES))
def test_loads_by_path_with_the_latent_patch_grid_read_from_the_pipeline(models, family):
    pipeline, patch, token, _ = FAMILIES[family]
    backend = _load(models, family)
    assert isinstance(backend, UnifiedModel) and type(backend.pipe).__name__ == pipeline
    assert backend.name == f"pair:{models[family]}+{models['judge']}"
    # VAE ×4 (three resolution levels) × the latent patch (SD3's and Sana's patch_size, FLUX's 2×2 packing).
    assert backend.pipe.vae_scale_factor == 4 and backend.latent_patch == patch and backend.token_size == token
    side = 32 // token
    assert backend.image_size == (32, 32) and backend.token_grid(32, 32) == (side, side)
    assert backend.token_grid(64, 32) == (side, 2 * side)
    with pytest.raises(ValueError, match=f"multiples of {token}"):
        backend.token_grid(34, 32)
    assert backend.categories()[0] == "color" and backend.prompt_sets() == ("t2i-compbench",)
    assert backend.referee() is None
    targets = backend.lora_target_modules()
    assert {"to_q", "to_k", "to_v", "to_out.0"} <= set(targets)
    assert ("add_q_proj" in targets) == (family != "sana")  # MMDiT blocks have a text stream; Sana cross-attends
    assert list(backend.box_sources()) == ["vlm-grounding", "segmenter"]


def test_an_unsupported_pipeline_is_refused_before_its_weights_load(models, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(models["sd3"], other)
    index = json.loads((other / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (other / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="drives StableDiffusion3Pipeline, FluxPipeline"):
        load_pair(str(other), str(models["judge"]), device="cpu", use_cache=False)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_generate_seeds_per_image_and_keeps_the_latent_payload(models, family):
    backend = _load(models, family)
    prompts = ["a red car", "a green bench and a red car", "three dogs"]
    samples = backend.generate(prompts, [1, 2, 3], GEN)
    assert [s.prompt for s in samples] == prompts and [s.seed for s in samples] == [1, 2, 3]
    for s in samples:
        assert s.image.size == (32, 32) and s.image.mode == "RGB"
        assert s.payload.shape == (4, 8, 8) and s.payload.dtype == torch.float32  # the ×4 VAE's latent
        assert s.settings["steps"] == 2 and s.settings["scheduler"] == FAMILIES[family][3]
    # The payload is the VAE latent of the saved image, so a sample read back from disk trains the same.
    assert torch.allclose(backend.encode_images([samples[1].image])[0], samples[1].payload, atol=1e-5)
    # Same seed → same image, alone or inside a batch of other prompts; another seed → another image.
    alone = backend.generate(["a green bench and a red car"], [2], GEN)[0]
    assert np.abs(_pixels(alone.image) - _pixels(samples[1].image)).max() <= 1
    other = backend.generate(["a green bench and a red car"], [9], GEN)[0]
    assert np.abs(_pixels(other.image) - _pixels(samples[1].image)).max() > 10
    # Our generate is the pipeline's own call with per-image CPU generators.
    direct = _plain_call(backend.pipe, prompts[:1], [1], backend.max_sequence_length)[0]
    assert np.abs(_pixels(direct) - _pixels(samples[0].image)).max() <= 1


def _plain_call(pipe, prompts, seeds, max_sequence_length):
    """The diffusers pipeline's own ``__call__`` at the tests' settings (Sana: at the asked size, unbinned)."""
    extra = {"use_resolution_binning": False} if type(pipe).__name__ == "SanaPipeline" else {}
    return pipe(
        prompt=list(prompts),
        height=32,
        width=32,
        num_inference_steps=GEN.steps,
        guidance_scale=GEN.guidance,
        generator=[torch.Generator().manual_seed(s) for s in seeds],
        max_sequence_length=max_sequence_length,
        **extra,
    ).images


def test_a_box_maps_to_the_latent_patches_it_covers():
    """Hand-made: 32×32 image, 8-px tokens → a 4×4 grid; the reward map and the per-token loss share one layout."""
    regions = (
        RegionJudgement(Region((8, 0, 24, 16), "user"), "car", 1.0),  # exactly tokens rows 0–1, cols 1–2
        RegionJudgement(Region((0, 28, 4, 32), "user"), "dot", 1.0),  # half of token (3, 0) wide, half high
    )
    report = RewardReport("a red car", 32, 32, GlobalJudgement(1.0), regions)
    token = build_reward_map(report, RewardConfig(mode="released", grid="area"), 8).token
    expected = np.full((4, 4), 0.5, dtype=np.float32)
    expected[0:2, 1:3] = 1.0
    expected[3, 0] = 0.5 + 0.5 * (4 * 4) / 64  # a quarter of the token's pixels at 1.0, the rest at 0.5
    np.testing.assert_allclose(token, expected, atol=1e-6)

    # Latent 8×8, patch 2: an error inside latent pixels [2:4, 4:6] is token (1, 2) → index 1·4 + 2 = 6.
    target = torch.zeros(1, 4, 8, 8)
    pred = target.clone()
    pred[0, 3, 2:4, 4:6] = 2.0
    errors = token_errors(pred, target, patch=2)
    assert errors.shape == (1, 16)
    assert torch.nonzero(errors[0]).flatten().tolist() == [6]
    assert float(errors[0, 6]) == pytest.approx(4.0 * 4 / (4 * 2 * 2))  # one channel of four, four latent pixels


def test_likelihood_judge_is_p_yes_of_the_first_answer_token(sd3):
    from PIL import Image

    image = Image.new("RGB", (32, 32), (200, 30, 30))
    config = JudgeConfig()
    verdict = sd3.judge_global(image, "a red car", config)
    question = config.global_template.format(prompt="a red car")
    inputs = sd3.judge.inputs([image], [question])
    # The image placeholder is expanded to the 2 × 2 merged patches of the 56 × 56 view.
    assert int((inputs["input_ids"] == sd3.judge.model.config.image_token_id).sum()) == 4
    with torch.no_grad():
        logp = torch.log_softmax(sd3.judge.model(**inputs).logits[0, -1].float(), dim=-1)
    p_yes = float(torch.sigmoid(logp[sd3.judge.yes_ids].logsumexp(0) - logp[sd3.judge.no_ids].logsumexp(0)))
    assert verdict.parse_status == "ok" and verdict.question == question
    assert verdict.score == pytest.approx(2 * p_yes - 1, abs=1e-5)
    # Batched with other questions (left padding) gives the same probability.
    batch = sd3.yes_probability([image, image.rotate(90)], [question, "Is this blue? Answer Yes or No."])
    assert batch[0] == pytest.approx(p_yes, abs=1e-4)
    regions = [Region((0, 0, 16, 16), "user", label="car"), Region((8, 8, 32, 32), "user")]
    for view in ("crop", "boxes", "coords"):
        judged = sd3.judge_regions(image, "a red car", regions, JudgeConfig(region_view=view))
        assert [j.region.box for j in judged] == [r.box for r in regions] and all(j.usable for j in judged)
    coords = sd3.judge_regions(image, "a red car", regions[:1], JudgeConfig(region_view="coords"))[0]
    assert "[0, 0, 28, 28]" in coords.question  # the box in the 56×56 pixels the judge sees


def test_rubric_judge_asks_in_srum_format_and_keeps_failures(models, monkeypatch):
    from PIL import Image

    backend = _load(models, "sd3", judge_mode="rubric")
    image = Image.new("RGB", (32, 32), (20, 120, 40))
    raw = backend.judge_global(image, "a green bench", JudgeConfig())  # a random model writes no score
    assert raw.parse_status == "failed" and raw.score is None and raw.raw_text is not None
    assert 'Prompt: "a green bench"' in raw.question and "Score: <number" in raw.question

    asked = []

    def canned(images, questions, max_new_tokens):
        asked.extend(questions)
        if "Region ID" in questions[0]:
            return ["Region ID: 1\nIdentified Object: bench\nScore: 0.8\nReason: fine\n---\nRegion ID: 2\nScore: 1.7"]
        return ["Score: -0.5\nReason: the bench is missing"]

    monkeypatch.setattr(backend, "answer", canned)
    assert backend.judge_global(image, "a green bench", JudgeConfig()).score == -0.5
    regions = [Region((8, 0, 24, 16), "user"), Region((0, 16, 32, 32), "user")]
    judged = backend.judge_regions(image, "a green bench", regions, JudgeConfig(region_view="coords"))
    assert [j.score for j in judged] == [0.8, 1.0] and judged[1].parse_status == "clamped"
    assert judged[0].object_name == "bench"
    assert "Region ID: 1\nBounding Box: [14, 0, 42, 28]" in asked[-1] and "of this 56x56 image" in asked[-1]


def test_the_judges_own_grounding_reads_json_boxes_in_its_own_pixels(models, monkeypatch):
    from PIL import Image

    text = (
        'Sure.\n```json\n[\n  {"bbox_2d": [14, 0, 42, 28], "label": "red car"},\n'
        '  {"bbox_2d": [0, 28, 56, 70], "label": "road"},\n  {"bbox_2d": [14, 0, 42, 28], "label": "red car"},\n'
        '  {"bbox_2d": [5, 5, 5, 9], "label": "nothing"},\n  {"bbox_2d": [1, 2, 3'  # cut short
    )
    regions = parse_grounding(text, frame=(56, 56), size=(32, 32))
    assert [(r.box, r.label) for r in regions] == [((0, 16, 32, 32), "road"), ((8, 0, 24, 16), "red car")]
    assert parse_grounding("no boxes here", (56, 56), (32, 32)) == []
    assert to_frame((8, 0, 24, 16), (32, 32), (56, 56)) == (14, 0, 42, 28)

    backend = _load(models, "sd3")
    source = backend.box_sources()["vlm-grounding"]
    assert source.kind == "grounding"
    asked = []
    monkeypatch.setattr(backend, "answer", lambda images, questions, n: asked.extend(questions) or [text])
    image = Image.new("RGB", (32, 32))
    found = source.propose(image, "a red car on a road", max_regions=1)
    assert [r.box for r in found] == [(0, 16, 32, 32)] and found[0].source == "vlm-grounding"
    assert asked == [GROUNDING_REQUEST.format(objects='"red car", "road"')]
    monkeypatch.undo()
    assert isinstance(source.propose(image, "a red car"), list)  # the random judge's own answer: no crash


def test_the_inspect_tabs_per_object_breakdown(models, monkeypatch):
    """What the Inspect tab shows (srum_core.facade.inspect_prompt): the judge grounds the prompt's objects, judges
    each, and every map mode lands on the 4×4 latent token grid."""
    from srum_core.facade import inspect_prompt

    backend = _load(models, "sd3")
    grounded = '[{"bbox_2d": [14, 0, 42, 28], "label": "red car"}, {"bbox_2d": [0, 28, 56, 56], "label": "road"}]'
    monkeypatch.setattr(backend.judge, "answer", lambda images, questions, n: [grounded])
    result = inspect_prompt(backend, "a red car on a road", 3, GEN, JudgeConfig(region_view="boxes"), None)
    assert result.box_source == "vlm-grounding" and result.seed == 3
    assert [(j.object_name, j.region.box) for j in result.region_judgements] == [
        ("road", (0, 16, 32, 32)),
        ("red car", (8, 0, 24, 16)),
    ]
    assert all(j.usable for j in result.region_judgements) and result.global_judgement.usable
    assert {"released", "signed", "sft"} <= set(result.maps)
    assert all(m.token.shape == (4, 4) and m.pixel.shape == (32, 32) for m in result.maps.values())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_token_losses_train_only_the_transformers_lora(models, family):
    backend = _load(models, family)
    samples = backend.generate(["a red car", "two cats"], [1, 2], GEN)
    module = A.attach_adapter(backend, TrainingConfig(lora_rank=4))
    assert module is backend.pipe.transformer
    errors = backend.token_losses(samples, torch.Generator().manual_seed(0))
    n_tokens = (32 // FAMILIES[family][2]) ** 2
    assert errors.shape == (2, n_tokens) and errors.requires_grad and bool((errors >= 0).all())
    again = backend.token_losses(samples, torch.Generator().manual_seed(0))
    assert torch.allclose(errors, again)  # the seed fixes t, ε and the prompt dropout
    errors.mean().backward()
    trainable = {n for n, p in backend.pipe.transformer.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.grad is not None for n, p in backend.pipe.transformer.named_parameters() if n in trainable)
    frozen = [c for n, c in backend.pipe.components.items() if isinstance(c, torch.nn.Module) and n != "transformer"]
    assert len(frozen) >= 2 and not any(p.requires_grad for c in frozen for p in c.parameters())  # VAE, encoders
    assert not any(p.requires_grad for p in backend.judge.model.parameters())
    # With every prompt dropped, the loss conditions on the empty prompt (the pipelines' CFG branch).
    dropped = backend.token_losses(samples, torch.Generator().manual_seed(0), cond_dropout=0.999)
    assert not torch.allclose(dropped, errors)


def test_offload_swap_keeps_one_model_on_the_gpu(models, monkeypatch):
    backend = _load(models, "sd3", offload="swap")
    moves = []
    monkeypatch.setattr(backend, "_move", lambda part, device: moves.append((part, device.type)))
    backend._device = torch.device("cuda")  # pretend: only the placement logic runs
    backend._use("generator")
    backend._use("generator")  # already there: nothing moves
    backend._use("judge")
    assert moves == [("judge", "cpu"), ("generator", "cuda"), ("generator", "cpu"), ("judge", "cuda")]


@pytest.mark.slow
def test_round_then_the_adapter_loads_into_a_plain_pipeline_with_load_lora_weights(models, tmp_path):
    """run_round (generate → segmenter boxes → likelihood judge → maps → LoRA) on the tiny SD3, then the run's adapter
    through diffusers' own LoRA loader gives the images the trained backend gives."""
    from diffusers import StableDiffusion3Pipeline

    from srum_core.rounds import RoundConfig, run_round

    backend = _load(models, "sd3")
    prompts = ["a red car", "two cats", "a blue cup"]
    base = backend.pipeline_images(prompts[:2], [7, 8], GEN)
    prompt_file = tmp_path / "prompts.jsonl"
    prompt_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    config = RoundConfig(
        prompts=str(prompt_file),
        n_prompts=3,
        seed=5,
        generation=GEN,
        judge=JudgeConfig(region_view="crop", max_regions=2, box_source="segmenter"),
        reward=RewardConfig(grid="area"),
        training=TrainingConfig(steps=3, lr=0.05, batch_size=3, lora_rank=4, warmup_steps=0),
        eval_split=None,
        n_fixed_samples=1,
    )
    result = run_round(backend, config, tmp_path / "run")
    assert result.n_samples == 3 and result.n_trained == 3 and result.train.steps == 3
    run_config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run_config["token_size"] == 8 and run_config["backend"] == backend.name
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / DIFFUSERS_LORA_FILE).is_file() and (adapter / "adapter_model.safetensors").is_file()
    trained = backend.pipeline_images(prompts[:2], [7, 8], GEN)
    assert max(np.abs(_pixels(a) - _pixels(b)).max() for a, b in zip(base, trained)) > 2  # the LoRA matters

    pipe = StableDiffusion3Pipeline.from_pretrained(models["sd3"])
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(adapter)
    reloaded = _plain_call(pipe, prompts[:2], [7, 8], backend.max_sequence_length)
    assert all(np.abs(_pixels(a) - _pixels(b)).max() <= 1 for a, b in zip(reloaded, trained))

    # And back into a fresh backend through the project's own adapter files: the same weights exactly.
    fresh = _load(models, "sd3")
    A.load_adapter(fresh, adapter)
    state_a, state_b = A.adapter_state(backend), A.adapter_state(fresh)
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux", "sana"])
def test_adapter_loads_into_a_plain_pipeline_with_load_lora_weights(models, family, tmp_path):
    from diffusers import DiffusionPipeline

    from srum_core.training import train_on_samples

    backend = _load(models, family)
    samples = backend.generate(["a red car", "two cats"], [3, 4], GEN)
    training = TrainingConfig(steps=3, lr=0.05, batch_size=2, lora_rank=4, warmup_steps=0)
    A.attach_adapter(backend, training)
    n_tokens = (32 // FAMILIES[family][2]) ** 2
    train_on_samples(backend, samples, np.ones((2, n_tokens), dtype=np.float32), training)
    A.save_adapter(backend, tmp_path / "adapter", training)
    trained = backend.pipeline_images(["a red car"], [3], GEN)[0]
    assert np.abs(_pixels(trained) - _pixels(samples[0].image)).max() > 2

    pipe = DiffusionPipeline.from_pretrained(models[family])
    assert type(pipe).__name__ == FAMILIES[family][0]
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(tmp_path / "adapter")
    reloaded = _plain_call(pipe, ["a red car"], [3], backend.max_sequence_length)[0]
    assert np.abs(_pixels(reloaded) - _pixels(trained)).max() <= 1


@pytest.mark.slow
def test_cli_round_with_generator_and_judge_flags(models, tmp_path, capsys):
    from srum_core import cli

    prompt_file = tmp_path / "prompts.jsonl"
    prompt_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["a red car", "two cats"]))
    code = cli.main(
        [
            "round",
            "--backend",
            "pair",
            "--generator",
            str(models["sd3"]),
            "--judge",
            str(models["judge"]),
            "--judge-mode",
            "likelihood",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--prompts",
            str(prompt_file),
            "--n-prompts",
            "2",
            "--gen-steps",
            "2",
            "--steps",
            "1",
            "--box-source",
            "segmenter",
            "--max-regions",
            "2",
            "--eval-split",
            "none",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["backend"] == f"pair:{models['sd3']}+{models['judge']}" and config["token_size"] == 8
    rows = [json.loads(line) for line in (tmp_path / "run" / "images" / "generation.jsonl").read_text().splitlines()]
    assert [r["settings"]["steps"] for r in rows] == [2, 2]
    assert (tmp_path / "run" / "adapter" / DIFFUSERS_LORA_FILE).is_file()
    assert "round 1 written" in capsys.readouterr().out
