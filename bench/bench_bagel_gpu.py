"""BAGEL backend throughput on a randomly initialised FULL-SIZE BAGEL-7B-MoT in bf16 (no hub access needed).

The model is built from BAGEL-7B-MoT's published sizes (Qwen2.5-7B language model with two experts, SigLIP
so400m/14 at 980², FLUX VAE) directly on the GPU and filled with seeded random weights; the tokenizer is a small
byte-level BPE built here. Measured in one run, on one device:

- generation: images/s at 512² and 1024² (SRUM's sampler: ``--steps`` schedule points (50), text CFG 4 inside
  (0.4, 1], shift 3, global renorm; plain mode), and the think-mode plan's decoding speed (tokens/s);
- judging: images/s of the likelihood judge (global, and 10 regions as crops) and of the rubric judge
  (``--rubric-tokens`` greedy tokens, think mode — a random model never stops early, so this is the worst case);
- one SRUM LoRA round (``srum_core.rounds.run_round``) on ``--round-images`` (16) T2I-CompBench prompts at
  ``--round-size``: wall time per stage and peak GPU memory;
- which single calls fit a ZeroGPU slot (≤ 120 s).

Random weights give the real compute and memory cost, not real images or scores. The official inference loop
needs flash-attn and is not run here.

    python -m bench.bench_bagel_gpu --out bench/out/bagel_gpu.json    # H100/H200-class GPU, full size
    python -m bench.bench_bagel_gpu --device cpu --tiny               # seconds on a laptop: checks the script
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from srum_core.backends.bagel import (
    GEN_THINK_SYSTEM_PROMPT,
    BagelArchitecture,
    BagelBackend,
    build_model,
    init_random_,
    llm_config_from_dict,
    published_architecture,
    vae_kwargs_from_shapes,
    vit_config_from_dict,
)
from srum_core.config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig
from srum_core.device import default_dtype, resolve_device
from srum_core.types import Region

PROMPTS = [
    "a green bench and a red car",
    "three dogs and two cats",
    "a book on the left of a bird",
    "The rectangular mirror was hung above the marble sink.",
]
ZEROGPU_S = 120.0


def tiny_architecture(vocab: int) -> BagelArchitecture:
    """The test suite's tiny sizes (64² images, 16-pixel tokens)."""
    llm = llm_config_from_dict(
        {
            "vocab_size": vocab,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_theta": 10000.0,
        }
    )
    vit = vit_config_from_dict(
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 4,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        }
    )
    shapes = {
        "encoder.conv_in.weight": (32, 3, 3, 3),
        "encoder.conv_out.weight": (8, 64, 3, 3),
        "decoder.conv_out.weight": (3, 32, 3, 3),
    }
    for i, c in enumerate((32, 32, 64, 64)):
        shapes[f"encoder.down.{i}.block.0.conv2.weight"] = (c, c, 3, 3)
    return BagelArchitecture(
        llm=llm,
        vit=vit,
        vae=vae_kwargs_from_shapes(shapes),
        latent_patch_size=2,
        max_latent_size=4,
        vit_max_patches_per_side=8,
    )


def build(tiny: bool, device: torch.device) -> tuple[Any, Any]:
    """(model, tokenizer): random weights in bf16 on CUDA (fp32 on CPU)."""
    from transformers import AutoTokenizer

    from tests.conftest_bagel import build_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="bagel-tok-"))
    size = build_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    arch = tiny_architecture(size) if tiny else published_architecture()
    model = init_random_(build_model(arch, device, default_dtype(device)), seed=0, std=0.02)
    return model, tokenizer


def backend_at(model: Any, tokenizer: Any, side: int, **options: Any) -> BagelBackend:
    return BagelBackend(
        model,
        tokenizer,
        model_id="random-bagel-7b-mot",
        image_size=side,
        sam_model=None,
        grounding_model=None,
        **options,
    )


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


def bench_generation(model: Any, tok: Any, device: torch.device, side: int, batch: int, steps: int) -> dict[str, Any]:
    backend = backend_at(model, tok, side, mode="plain")
    config = GenerationConfig(steps=steps, guidance=4.0, batch_size=batch)
    backend.generate(PROMPTS[:1], [0], GenerationConfig(steps=2, guidance=4.0, batch_size=1))  # warm-up
    reset_peak(device)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    t, _ = timed(device, lambda: backend.generate(prompts, list(range(batch)), config))
    return {
        "size": side,
        "batch": batch,
        "steps": steps,
        "seconds": round(t, 2),
        "images_per_s": round(batch / t, 4),
        "seconds_per_image": round(t / batch, 2),
        "peak_gb": peak_gb(device),
    }


def bench_plan(model: Any, tok: Any, device: torch.device, batch: int, tokens: int) -> dict[str, Any]:
    backend = backend_at(model, tok, model.arch.max_latent_size * model.arch.token_size, mode="think")
    rows = [
        [("text", backend.encode(GEN_THINK_SYSTEM_PROMPT)), ("text", backend.encode(p))]
        for p in (PROMPTS * batch)[:batch]
    ]
    t, _ = timed(device, lambda: backend.generate_text(rows, tokens + 1))
    return {"batch": batch, "tokens": tokens, "seconds": round(t, 2), "tokens_per_s_per_row": round(tokens / t, 2)}


def bench_judges(model: Any, tok: Any, device: torch.device, side: int, n: int, rubric_tokens: int) -> dict[str, Any]:
    from PIL import Image

    likelihood = backend_at(model, tok, side, judge="likelihood")
    rubric = backend_at(
        model, tok, side, judge="rubric", max_global_tokens=rubric_tokens + 1, max_region_tokens=rubric_tokens + 1
    )
    images = [Image.new("RGB", (side, side), (40 * i % 255, 90, 160)) for i in range(n)]
    q = side // 4
    regions = [
        Region((q * (k % 4), q * (k // 4 % 4), q * (k % 4) + q, q * (k // 4 % 4) + q), "bench") for k in range(10)
    ]
    config = JudgeConfig(region_view="crop")
    likelihood.judge_global(images[0], PROMPTS[0], config)  # warm-up
    reset_peak(device)
    t_global, _ = timed(device, lambda: [likelihood.judge_global(im, PROMPTS[0], config) for im in images])
    t_regions, _ = timed(device, lambda: [likelihood.judge_regions(im, PROMPTS[0], regions, config) for im in images])
    t_rubric, _ = timed(device, lambda: [rubric.judge_global(im, PROMPTS[0], config) for im in images[:2]])
    coords = JudgeConfig(region_view="coords")
    t_rubric_regions, _ = timed(device, lambda: rubric.judge_regions(images[0], PROMPTS[0], regions, coords))
    return {
        "size": side,
        "likelihood_global_images_per_s": round(n / t_global, 3),
        "likelihood_10_regions_images_per_s": round(n / t_regions, 3),
        "rubric_tokens": rubric_tokens,
        "rubric_global_images_per_s": round(2 / t_rubric, 3),
        "rubric_10_regions_one_request_s": round(t_rubric_regions, 2),
        "peak_gb": peak_gb(device),
    }


def bench_round(
    model: Any, tok: Any, device: torch.device, side: int, n: int, batch: int, steps: int
) -> dict[str, Any]:
    from srum_core.rounds import RoundConfig, run_round

    backend = backend_at(model, tok, side, mode="plain", judge="likelihood")
    config = RoundConfig(
        prompts="t2i-compbench",
        n_prompts=n,
        seed=0,
        generation=GenerationConfig(steps=steps, guidance=4.0, batch_size=batch),
        judge=JudgeConfig(region_view="crop", max_regions=10, box_source="segmenter"),
        reward=RewardConfig(grid="area"),
        training=TrainingConfig(steps=max(1, n // 8), lr=1e-4, batch_size=8, lora_rank=16),
        eval_split=None,
        n_fixed_samples=0,
    )
    reset_peak(device)
    with tempfile.TemporaryDirectory() as tmp:
        t, result = timed(device, lambda: run_round(backend, config, Path(tmp) / "run"))
    return {
        "images": n,
        "size": side,
        "steps": steps,
        "train_steps": result.train.steps,
        "wall_s": round(t, 2),
        "stage_s": {k: round(v, 2) for k, v in result.timings.items()},
        "n_trained": result.n_trained,
        "peak_gb": peak_gb(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="the test suite's tiny BAGEL instead of the full size")
    parser.add_argument("--steps", type=int, default=None, help="schedule points per image (default 50; tiny 4)")
    parser.add_argument("--batch-512", type=int, default=8, help="generation batch at 512² (default 8)")
    parser.add_argument("--batch-1024", type=int, default=4, help="generation batch at 1024² (default 4)")
    parser.add_argument("--plan-tokens", type=int, default=None, help="think-plan tokens decoded (default 128)")
    parser.add_argument("--judge-images", type=int, default=None, help="images per judge measurement (default 8)")
    parser.add_argument("--rubric-tokens", type=int, default=None, help="greedy tokens per rubric answer (default 64)")
    parser.add_argument("--round-images", type=int, default=None, help="images in the LoRA round (default 16; tiny 4)")
    parser.add_argument("--round-size", type=int, default=512, help="image side in the round (default 512)")
    parser.add_argument("--skip", default="", help="comma list of phases to skip: generation,plan,judges,round")
    parser.add_argument("--out", default=None, help="also write the results as JSON to this file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type != "cuda" and not args.tiny:
        parser.error("the full-size model needs a CUDA GPU; use --device cpu --tiny to check the script on CPU")
    skip = {s for s in args.skip.split(",") if s}
    steps = args.steps or (4 if args.tiny else 50)
    t, (model, tok) = timed(device, lambda: build(args.tiny, device))
    sizes = (64,) if args.tiny else (512, 1024)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype),
        "build_s": round(t, 2),
        "weights_gb": peak_gb(device),
    }
    if "generation" not in skip:
        results["generation"] = []
        for side in sizes:
            batch = 2 if args.tiny else (args.batch_512 if side == 512 else args.batch_1024)
            row = bench_generation(model, tok, device, side, batch, steps)
            results["generation"].append(row)
            print(json.dumps({"generation": row}), flush=True)
    if "plan" not in skip:
        results["plan"] = bench_plan(model, tok, device, 4, args.plan_tokens or (8 if args.tiny else 128))
        print(json.dumps({"plan": results["plan"]}), flush=True)
    if "judges" not in skip:
        results["judges"] = bench_judges(
            model,
            tok,
            device,
            sizes[-1],
            args.judge_images or (2 if args.tiny else 8),
            args.rubric_tokens or (8 if args.tiny else 64),
        )
        print(json.dumps({"judges": results["judges"]}), flush=True)
    if "round" not in skip:
        side = 64 if args.tiny else args.round_size
        batch = 2 if args.tiny else (args.batch_512 if side <= 512 else args.batch_1024)
        n = args.round_images or (4 if args.tiny else 16)
        results["round"] = bench_round(model, tok, device, side, n, batch, steps)
        print(json.dumps({"round": results["round"]}), flush=True)
    fits = []
    for row in results.get("generation", []):
        if row["seconds_per_image"] <= ZEROGPU_S:
            fits.append(f"one {row['size']}² image ({row['seconds_per_image']} s in a batch of {row['batch']})")
    results["zerogpu_120s_fits"] = fits
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
