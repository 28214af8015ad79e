"""Janus-Pro backend throughput on a randomly initialised FULL-SIZE Janus-Pro-1B (no hub access needed).

Measured side by side in one run, on one device:

- generation: images/s of our seeded CFG sampling loop (static KV cache, and the same loop with a growing
  dynamic cache) vs transformers' plain ``generate(generation_mode="image", do_sample=True)`` +
  ``decode_image_tokens`` at the same batch size (ratios);
- judging: images/s of the likelihood judge (global; 10 regions as crops) and of the rubric judge (greedy text,
  ``--rubric-tokens`` new tokens — a random model never stops early, so this is the worst case);
- one SRUM LoRA round (``srum_core.rounds.run_round``) on ``--round-images`` T2I-CompBench prompts: wall time per
  stage;
- peak GPU memory per phase.

Random weights give the real compute and memory cost, not real images or scores.

    python -m bench.bench_janus_gpu                      # H100-class GPU, full-size Janus-Pro-1B config
    python -m bench.bench_janus_gpu --device cpu --tiny  # seconds on a laptop, checks the script works
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from srum_core.backends.janus import JanusBackend
from srum_core.config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig
from srum_core.device import default_dtype, resolve_device
from srum_core.types import Region

SPECIALS = [
    "<|begin▁of▁sentence|>",
    "<|end▁of▁sentence|>",
    "<pad>",
    "<image_placeholder>",
    "<begin_of_image>",
    "<end_of_image>",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] | lower == 'user' %}<|User|>: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image_placeholder>\n"
    "{% else %}{{ part['text'] }}\n{% endif %}{% endfor %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)
PROMPTS = [
    "a green bench and a red car",
    "three dogs and two cats",
    "a book on the left of a bird",
    "The rectangular mirror was hung above the marble sink.",
]


def build_processor(image_size: int, n_image_tokens: int) -> Any:
    """A byte-level BPE tokenizer trained here (Janus-Pro's own needs the hub) inside a real JanusProcessor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import JanusProcessor, PreTrainedTokenizerFast
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(
        PROMPTS * 4 + ["Yes No yes no Score: 0.5 Reason: Region ID: Identified Object:"] * 4, trainer
    )
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS[0]} $A", special_tokens=[(SPECIALS[0], bpe.token_to_id(SPECIALS[0]))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=SPECIALS[0],
        eos_token=SPECIALS[1],
        pad_token="<pad>",
        padding_side="left",
        extra_special_tokens={"image_token": SPECIALS[3], "boi_token": SPECIALS[4], "eoi_token": SPECIALS[5]},
    )
    image_processor = JanusImageProcessorPil(size={"height": image_size, "width": image_size})
    return JanusProcessor(image_processor, tokenizer, chat_template=CHAT_TEMPLATE, num_image_tokens=n_image_tokens)


def janus_config(tiny: bool, tokenizer: Any) -> Any:
    """Janus-Pro-1B's published architecture (Llama 24×2048, SigLIP-L 384/16, 16384-code VQ) or a tiny one."""
    from transformers import JanusConfig

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if tiny:
        text = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
        vision = dict(image_size=16, patch_size=4, num_image_tokens=16, hidden_size=32, projection_dim=32,
                      num_hidden_layers=1, num_attention_heads=4, mlp_ratio=2)  # fmt: skip
        vq = dict(embed_dim=8, num_embeddings=64, latent_channels=8, base_channels=32, channel_multiplier=[1, 1, 1, 1],
                  num_res_blocks=1, projection_dim=32, image_token_embed_dim=32)  # fmt: skip
    else:
        text = dict(vocab_size=102400, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                    num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=16384)  # fmt: skip
        vision = dict(image_size=384, patch_size=16, num_image_tokens=576, hidden_size=1024, projection_dim=2048,
                      num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4.0)  # fmt: skip
        vq = dict(embed_dim=8, num_embeddings=16384, projection_dim=2048, image_token_embed_dim=2048)
    return JanusConfig(
        text_config={"model_type": "llama", **text, **ids},
        vision_config=vision,
        vq_config=vq,
        image_token_id=tokenizer.convert_tokens_to_ids(SPECIALS[3]),
        # Janus-Pro-1B keeps a separate LM head: ~2.08B parameters in all, as published.
        tie_word_embeddings=tiny,
    )


def build_backend(tiny: bool, device: torch.device) -> JanusBackend:
    from transformers import JanusForConditionalGeneration

    n_tokens = 16 if tiny else 576
    processor = build_processor(16 if tiny else 384, n_tokens)
    config = janus_config(tiny, processor.tokenizer)
    torch.manual_seed(0)
    dtype = default_dtype(device)
    with torch.device(device):
        model = JanusForConditionalGeneration(config)
    model = model.to(dtype).eval().requires_grad_(False)
    gen = model.generation_config
    gen.pad_token_id, gen.bos_token_id = processor.tokenizer.pad_token_id, processor.tokenizer.bos_token_id
    gen.generation_kwargs = {"boi_token_id": processor.tokenizer.convert_tokens_to_ids(SPECIALS[4])}
    return JanusBackend(model, processor, model_id="random-janus-pro-1b" if not tiny else "random-tiny-janus")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def timed(device: torch.device, fn) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def bench_generation(backend: JanusBackend, device: torch.device, batch: int, guidance: float) -> dict[str, Any]:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    seeds = list(range(batch))
    config = GenerationConfig(guidance=guidance, batch_size=batch)
    backend.generate(prompts[:1], seeds[:1], GenerationConfig(guidance=guidance, batch_size=1))  # warm-up
    reset_peak(device)
    ours_s, _ = timed(device, lambda: backend.generate(prompts, seeds, config))
    ours_peak = peak_gb(device)
    backend.kv_cache = "dynamic"  # the same loop with a cache grown every step, for comparison
    reset_peak(device)
    dynamic_s, _ = timed(device, lambda: backend.generate(prompts, seeds, config))
    dynamic_peak = peak_gb(device)
    backend.kv_cache = "static"

    ids, mask = backend._generation_inputs(prompts)

    def upstream():
        codes = backend.model.generate(
            input_ids=ids, attention_mask=mask, generation_mode="image", do_sample=True, guidance_scale=guidance
        )
        return backend.decode_codes(codes)

    timed(device, lambda: backend.model.generate(
        input_ids=ids[:1], attention_mask=mask[:1], generation_mode="image", do_sample=True, guidance_scale=guidance
    ))  # fmt: skip  # warm-up
    reset_peak(device)
    up_s, _ = timed(device, upstream)
    return {
        "batch": batch,
        "ours_images_per_s": round(batch / ours_s, 3),
        "transformers_generate_images_per_s": round(batch / up_s, 3),
        "ours_over_transformers": round(up_s / ours_s, 3),
        "ours_dynamic_cache_images_per_s": round(batch / dynamic_s, 3),
        "static_over_dynamic_cache": round(dynamic_s / ours_s, 3),
        "ours_peak_gb": ours_peak,
        "ours_dynamic_cache_peak_gb": dynamic_peak,
        "transformers_peak_gb": peak_gb(device),
    }


def profile_generation(backend: JanusBackend, device: torch.device, batch: int, guidance: float) -> str:
    """torch.profiler's table (top 20 by self device time, or CPU time on CPU) for one ``generate`` call."""
    from torch.profiler import ProfilerActivity, profile

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        backend.generate(prompts, list(range(batch)), GenerationConfig(guidance=guidance, batch_size=batch))
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=20)


def bench_judges(backend: JanusBackend, device: torch.device, n_images: int, rubric_tokens: int) -> dict[str, Any]:
    images = [s.image for s in backend.generate(PROMPTS[:1] * n_images, list(range(n_images)), GenerationConfig(guidance=5.0, batch_size=n_images))]  # fmt: skip
    width, height = backend.image_size
    regions = [Region((i * width // 20, i * height // 20, width // 2 + i * width // 20, height // 2 + i * height // 20), "bench") for i in range(10)]  # fmt: skip
    judge = JudgeConfig(region_view="crop")
    out: dict[str, Any] = {"images": n_images}
    backend.judge = "likelihood"
    backend.judge_global(images[0], PROMPTS[0], judge)  # warm-up
    reset_peak(device)
    t, _ = timed(device, lambda: [backend.judge_global(im, PROMPTS[0], judge) for im in images])
    out["likelihood_global_images_per_s"] = round(n_images / t, 3)
    t, _ = timed(device, lambda: [backend.judge_regions(im, PROMPTS[0], regions, judge) for im in images])
    out["likelihood_10_crops_images_per_s"] = round(n_images / t, 3)
    out["likelihood_peak_gb"] = peak_gb(device)
    backend.judge, backend.max_new_tokens = "rubric", rubric_tokens
    reset_peak(device)
    t, verdicts = timed(device, lambda: [backend.judge_global(im, PROMPTS[0], judge) for im in images])
    out["rubric_global_images_per_s"] = round(n_images / t, 3)
    out["rubric_new_tokens"] = rubric_tokens
    out["rubric_parse_failures"] = sum(not v.usable for v in verdicts)
    out["rubric_peak_gb"] = peak_gb(device)
    backend.judge = "likelihood"
    return out


def bench_round(backend: JanusBackend, device: torch.device, n_images: int, batch: int) -> dict[str, Any]:
    from srum_core.rounds import RoundConfig, run_round

    config = RoundConfig(
        prompts="t2i-compbench",
        n_prompts=n_images,
        seed=0,
        generation=GenerationConfig(guidance=5.0, batch_size=batch),
        judge=JudgeConfig(region_view="crop", max_regions=10),
        reward=RewardConfig(grid="area"),
        training=TrainingConfig(steps=max(1, n_images // 8), lr=1e-4, batch_size=8, lora_rank=16),
        eval_split=None,
        n_fixed_samples=0,
    )
    # Warm-up at the round's batch size, so its stage times are steady-state (not the process's first kernels).
    backend.generate(PROMPTS[:1] * batch, list(range(batch)), GenerationConfig(guidance=5.0, batch_size=batch))
    reset_peak(device)
    with tempfile.TemporaryDirectory() as tmp:
        t, result = timed(device, lambda: run_round(backend, config, Path(tmp) / "run"))
    return {
        "images": n_images,
        "train_steps": result.train.steps,
        "wall_s": round(t, 2),
        "stage_s": {k: round(v, 2) for k, v in result.timings.items()},
        "n_trained": result.n_trained,
        "peak_gb": peak_gb(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Janus instead of the full-size 1B config")
    parser.add_argument("--batch", type=int, default=None, help="generation batch size (default 16 full, 4 tiny)")
    parser.add_argument("--guidance", type=float, default=5.0, help="CFG scale (Janus-Pro uses 5)")
    parser.add_argument("--judge-images", type=int, default=None, help="images per judge measurement")
    parser.add_argument("--rubric-tokens", type=int, default=None, help="new tokens per rubric answer (default 160)")
    parser.add_argument("--round-images", type=int, default=None, help="images in the LoRA round (default 32)")
    parser.add_argument("--skip", default="", help="comma list of phases to skip: generation,judges,round")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table for one generate call")
    parser.add_argument("--out", default=None, help="also write the results as JSON to this file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type != "cuda" and not args.tiny:
        parser.error("the full-size model needs a CUDA GPU; use --device cpu --tiny to check the script on CPU")
    batch = args.batch or (4 if args.tiny else 16)
    skip = {s for s in args.skip.split(",") if s}
    t, backend = timed(device, lambda: build_backend(args.tiny, device))
    params = sum(p.numel() for p in backend.model.parameters())
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "model": backend.model_id,
        "parameters": params,
        "dtype": str(backend.dtype),
        "image_size": backend.image_size,
        "build_s": round(t, 2),
    }
    if "generation" not in skip:
        results["generation"] = bench_generation(backend, device, batch, args.guidance)
        print(json.dumps({"generation": results["generation"]}), flush=True)
    if args.profile:
        print(profile_generation(backend, device, batch, args.guidance), flush=True)
    if "judges" not in skip:
        results["judges"] = bench_judges(
            backend,
            device,
            args.judge_images or (2 if args.tiny else 8),
            args.rubric_tokens or (16 if args.tiny else 160),
        )
        print(json.dumps({"judges": results["judges"]}), flush=True)
    if "round" not in skip:
        results["round"] = bench_round(backend, device, args.round_images or (8 if args.tiny else 32), batch)
        print(json.dumps({"round": results["round"]}), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
