"""pair backend throughput: a FULL-SIZE random SD3.5-medium pipeline judged by a random Qwen2.5-VL-7B, in bf16.

Both models are built from their published configurations (written below; nothing is downloaded) directly on the
GPU and filled with seeded random weights (normal, std 0.02; norms 1, biases 0); the tokenizers are the test
suite's small ones, which pad to the same lengths (CLIP 77, T5 256). Measured in one run, on one device:

- generation: images/s of ``PairBackend.generate`` (the pipeline's own call with per-image CPU generators, plus
  the VAE encoding of each image for training) at 512² and 1024², against diffusers' own
  ``StableDiffusion3Pipeline.__call__`` with the same prompts, seeds, steps and CFG — the ratio is our overhead;
- judging: images/s of the likelihood judge (global question; 10 regions as crops), of the rubric judge
  (``--rubric-tokens`` greedy tokens — a random model never stops early, so this is the worst case) and of the
  judge's own grounding (``--grounding-tokens``), against one plain forward of the model on prepared inputs;
- one SRUM LoRA round (``srum_core.rounds.run_round``) on 16 T2I-CompBench prompts at 512²: wall time per stage
  and peak GPU memory;
- memory probes at 512² and 1024²: peak GPU memory of generating and judging one image and one LoRA training step
  on it (training batch 1) — what ``python -m srum_core backends`` lists per preset — with both models resident,
  and at 1024² with ``offload="swap"`` (plus the time one swap takes).

Random weights give the real compute and memory cost, not real images or scores.

    python -m bench.bench_pair_gpu --out bench/out/pair_gpu.json     # one H100/H200-class GPU, ~3 minutes
    python -m bench.bench_pair_gpu --device cpu --tiny               # seconds: checks the script on a CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srum_core.backends.pair import DIFFUSERS_LORA_FILE, GLOBAL_RUBRIC, PairBackend, VisionLanguageJudge, load_pair
from srum_core.config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig
from srum_core.device import default_dtype, resolve_device
from srum_core.types import Region

PROMPTS = [
    "a green bench and a red car",
    "three dogs and two cats",
    "a book on the left of a bird",
    "The rectangular mirror was hung above the marble sink.",
]

# stabilityai/stable-diffusion-3.5-medium, as published (transformer/, vae/, text_encoder{,_2,_3}/ configs).
SD35_MEDIUM_TRANSFORMER = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 384,
    "dual_attention_layers": list(range(13)),
    "qk_norm": "rms_norm",
}
SD3_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 1.5305,
    "shift_factor": 0.0609,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
          "projection_dim": 768, "hidden_act": "quick_gelu"}  # fmt: skip
CLIP_G = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
          "projection_dim": 1280, "hidden_act": "gelu"}  # fmt: skip
T5_XXL = {"d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24, "vocab_size": 32128,
          "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32}  # fmt: skip
# Qwen/Qwen2.5-VL-7B-Instruct, as published (config.json; the preprocessor's pixel limits).
QWEN25VL_7B_TEXT = {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                    "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
                    "rms_norm_eps": 1e-6,
                    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}}  # fmt: skip
QWEN25VL_7B_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                      "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                      "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2}  # fmt: skip
QWEN_PIXELS = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16384}


def init_random_(module: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Seeded random weights in place: matrices and embeddings ~ N(0, std), 1-D norm weights 1, biases 0."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, std)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.fill_(1.0)
    return module


def _on(device: torch.device, dtype: torch.dtype, build: Any) -> Any:
    """``build()`` with its parameters created directly on ``device`` in ``dtype``."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return build()
    finally:
        torch.set_default_dtype(previous)


def build_full(device: torch.device) -> tuple[Any, VisionLanguageJudge]:
    """Random full-size SD3.5-medium pipeline and Qwen2.5-VL-7B judge, bf16, on ``device``."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        T5Config,
        T5EncoderModel,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from tests.conftest_pair import QWEN_CHAT_TEMPLATE, QWEN_SPECIALS, clip_tokenizer, qwen_tokenizer, t5_tokenizer

    dtype = torch.bfloat16
    clip = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407)
    parts = {
        "transformer": lambda: SD3Transformer2DModel(**SD35_MEDIUM_TRANSFORMER),
        "vae": lambda: AutoencoderKL(**SD3_VAE),
        "text_encoder": lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L, **clip)),
        "text_encoder_2": lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G, **clip)),
        "text_encoder_3": lambda: T5EncoderModel(T5Config(**T5_XXL)),
    }
    built = {
        name: init_random_(_on(device, dtype, make), seed=k).eval() for k, (name, make) in enumerate(parts.items())
    }
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(),
        tokenizer_3=t5_tokenizer(),
        **built,
    )
    pipe.set_progress_bar_config(disable=True)
    for component in built.values():
        component.requires_grad_(False)

    tok_dir = Path(tempfile.mkdtemp(prefix="pair-bench-tok-"))
    tokenizer = qwen_tokenizer(tok_dir)
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config={**QWEN25VL_7B_TEXT, "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config=QWEN25VL_7B_VISION,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = init_random_(_on(device, dtype, lambda: Qwen2_5_VLForConditionalGeneration(config)), seed=9).eval()
    model.requires_grad_(False)
    judge = VisionLanguageJudge(model, tokenizer=tokenizer, image_processor=Qwen2VLImageProcessorPil(**QWEN_PIXELS))
    return pipe, judge


def build_tiny(device: torch.device) -> tuple[Any, VisionLanguageJudge]:
    """The test suite's tiny SD3 and Qwen2.5-VL, saved to a temporary folder and loaded by path."""
    from tests.conftest_pair import build_tiny_qwen25vl, build_tiny_sd3

    root = Path(tempfile.mkdtemp(prefix="pair-bench-tiny-"))
    backend = load_pair(
        str(build_tiny_sd3(root / "sd3")), str(build_tiny_qwen25vl(root / "judge")), str(device), use_cache=False
    )
    return backend.pipe, backend.judge


def backend_at(pipe: Any, judge: VisionLanguageJudge, device: torch.device, side: int, **options: Any) -> PairBackend:
    return PairBackend(
        pipe, judge, "random-sd35-medium", "random-qwen25vl-7b", device=device, image_size=side, **options
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


def bench_generation(pipe: Any, judge: Any, device: torch.device, side: int, batch: int, steps: int) -> dict:
    backend = backend_at(pipe, judge, device, side)
    config = GenerationConfig(steps=steps, guidance=4.5, batch_size=batch)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    seeds = list(range(batch))
    backend.generate(prompts[:1], [0], GenerationConfig(steps=2, guidance=4.5, batch_size=1))  # warm-up

    def diffusers_call() -> Any:
        return pipe(
            prompt=prompts,
            height=side,
            width=side,
            num_inference_steps=steps,
            guidance_scale=4.5,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        ).images

    reset_peak(device)
    ours, _ = timed(device, lambda: backend.generate(prompts, seeds, config))
    peak = peak_gb(device)
    theirs, _ = timed(device, diffusers_call)
    return {
        "size": side,
        "batch": batch,
        "steps": steps,
        "guidance": 4.5,
        "backend_s": round(ours, 2),
        "images_per_s": round(batch / ours, 4),
        "diffusers_call_s": round(theirs, 2),
        "diffusers_images_per_s": round(batch / theirs, 4),
        "ratio_backend_over_diffusers_time": round(ours / theirs, 3),
        "peak_gb": peak,
    }


def bench_judges(
    pipe: Any, judge: Any, device: torch.device, side: int, n: int, rubric_tokens: int, grounding_tokens: int
) -> dict:
    from PIL import Image

    likelihood = backend_at(pipe, judge, device, side, judge_mode="likelihood")
    rubric = backend_at(
        pipe,
        judge,
        device,
        side,
        judge_mode="rubric",
        max_global_tokens=rubric_tokens,
        max_region_tokens=rubric_tokens,
        max_grounding_tokens=grounding_tokens,
    )
    images = [Image.new("RGB", (side, side), (40 * i % 255, 90, 160)) for i in range(n)]
    q = side // 4
    regions = [Region((q * (k % 4), q * (k // 4), q * (k % 4) + q, q * (k // 4) + q), "bench") for k in range(10)]
    crop = JudgeConfig(region_view="crop")
    likelihood.judge_global(images[0], PROMPTS[0], crop)  # warm-up
    reset_peak(device)
    question = crop.global_template.format(prompt=PROMPTS[0])
    t_global, _ = timed(device, lambda: likelihood.yes_probability(images, [question] * n))
    t_regions, _ = timed(device, lambda: [likelihood.judge_regions(im, PROMPTS[0], regions, crop) for im in images])
    inputs = judge.inputs(images, [question] * n)
    with torch.no_grad():
        t_forward, _ = timed(device, lambda: judge.model(**inputs, logits_to_keep=1))
    rubric_question = GLOBAL_RUBRIC.format(prompt=PROMPTS[0])
    t_rubric, _ = timed(device, lambda: rubric.answer(images[:2], [rubric_question] * 2, rubric_tokens))
    grounding = rubric.box_sources()["vlm-grounding"]
    t_ground, _ = timed(device, lambda: grounding.propose(images[0], PROMPTS[0]))
    return {
        "size": side,
        "images": n,
        "likelihood_global_images_per_s": round(n / t_global, 3),
        "plain_forward_images_per_s": round(n / t_forward, 3),
        "ratio_likelihood_over_forward_time": round(t_global / t_forward, 3),
        "likelihood_10_crops_images_per_s": round(n / t_regions, 3),
        "rubric_tokens": rubric_tokens,
        "rubric_images_per_s": round(2 / t_rubric, 3),
        "grounding_tokens": grounding_tokens,
        "grounding_s_per_image": round(t_ground, 2),
        "peak_gb": peak_gb(device),
    }


def bench_round(pipe: Any, judge: Any, device: torch.device, side: int, n: int, batch: int, steps: int) -> dict:
    from srum_core.rounds import RoundConfig, run_round

    backend = backend_at(pipe, judge, device, side, judge_mode="likelihood")
    config = RoundConfig(
        prompts="t2i-compbench",
        n_prompts=n,
        seed=0,
        generation=GenerationConfig(steps=steps, guidance=4.5, batch_size=batch),
        judge=JudgeConfig(region_view="crop", max_regions=10, box_source="segmenter"),
        reward=RewardConfig(grid="area"),
        training=TrainingConfig(steps=max(1, n // 8), lr=1e-4, batch_size=8, lora_rank=16),
        eval_split=None,
        n_fixed_samples=0,
    )
    reset_peak(device)
    with tempfile.TemporaryDirectory() as tmp:
        t, result = timed(device, lambda: run_round(backend, config, Path(tmp) / "run"))
        exported = (Path(tmp) / "run" / "adapter" / DIFFUSERS_LORA_FILE).is_file()
    return {
        "images": n,
        "size": side,
        "steps": steps,
        "train_steps": result.train.steps,
        "train_batch": 8,
        "lora_rank": 16,
        "wall_s": round(t, 2),
        "stage_s": {k: round(v, 2) for k, v in result.timings.items()},
        "n_trained": result.n_trained,
        "diffusers_lora_file_written": exported,
        "peak_gb": peak_gb(device),
    }


def memory_probe(pipe: Any, judge: Any, device: torch.device, side: int, steps: int, offload: str = "none") -> dict:
    """Peak memory of one image generated and judged and one LoRA step on it (training batch 1). The LoRA of the
    round before (same rank) stays attached, as it would in a second round."""
    from srum_core import adapters
    from srum_core.training import train_on_samples

    backend = backend_at(pipe, judge, device, side, judge_mode="likelihood", offload=offload)
    training = TrainingConfig(steps=1, batch_size=1, lora_rank=16, warmup_steps=0)
    t, _ = timed(device, lambda: backend._use("generator"))  # with swap: the judge leaves the GPU first
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak(device)
    sample = backend.generate(PROMPTS[:1], [0], GenerationConfig(steps=steps, guidance=4.5, batch_size=1))[0]
    backend.judge_global(sample.image, sample.prompt, JudgeConfig())
    adapters.attach_adapter(backend, training)
    rows, cols = backend.token_grid(side, side)
    train_on_samples(backend, [sample], np.ones((1, rows * cols), dtype=np.float32), training)
    result = {"size": side, "offload": offload, "peak_gb": peak_gb(device)}
    if offload == "swap":
        result["swap_to_generator_s"] = round(t, 2)
    backend.offload = "none"
    backend._move("generator", device)
    backend._move("judge", device)
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="the test suite's tiny models instead of the full size")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps per image (default 20; tiny 2)")
    parser.add_argument("--batch-512", type=int, default=8, help="generation batch at 512² (default 8)")
    parser.add_argument("--batch-1024", type=int, default=4, help="generation batch at 1024² (default 4)")
    parser.add_argument("--judge-images", type=int, default=None, help="images per judge measurement (default 8)")
    parser.add_argument("--rubric-tokens", type=int, default=None, help="greedy tokens per rubric answer (default 64)")
    parser.add_argument("--grounding-tokens", type=int, default=None, help="greedy grounding tokens (default 64)")
    parser.add_argument("--round-images", type=int, default=None, help="images in the LoRA round (default 16; tiny 4)")
    parser.add_argument("--skip", default="", help="comma list of phases to skip: generation,judges,round,memory,swap")
    parser.add_argument("--out", default=None, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if device.type != "cuda" and not args.tiny:
        parser.error("the full-size models need a CUDA GPU; use --device cpu --tiny to check the script on CPU")
    skip = {s for s in args.skip.split(",") if s}
    steps = args.steps or (2 if args.tiny else 20)
    t, (pipe, judge) = timed(device, lambda: (build_tiny if args.tiny else build_full)(device))
    sizes = (32,) if args.tiny else (512, 1024)
    count = {
        "generator": sum(
            p.numel() for c in pipe.components.values() if isinstance(c, torch.nn.Module) for p in c.parameters()
        ),
        "transformer": sum(p.numel() for p in pipe.transformer.parameters()),
        "judge": sum(p.numel() for p in judge.model.parameters()),
    }
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": str(default_dtype(device)),
        "parameters": count,
        "build_s": round(t, 2),
        "weights_gb": peak_gb(device),
    }
    if "generation" not in skip:
        results["generation"] = []
        for side in sizes:
            batch = 2 if args.tiny else (args.batch_512 if side == 512 else args.batch_1024)
            row = bench_generation(pipe, judge, device, side, batch, steps)
            results["generation"].append(row)
            print(json.dumps({"generation": row}), flush=True)
    if "judges" not in skip:
        results["judges"] = bench_judges(
            pipe,
            judge,
            device,
            sizes[-1],
            args.judge_images or (2 if args.tiny else 8),
            args.rubric_tokens or (4 if args.tiny else 64),
            args.grounding_tokens or (4 if args.tiny else 64),
        )
        print(json.dumps({"judges": results["judges"]}), flush=True)
    if "round" not in skip:
        side = 32 if args.tiny else 512
        n = args.round_images or (4 if args.tiny else 16)
        results["round"] = bench_round(pipe, judge, device, side, n, 2 if args.tiny else args.batch_512, steps)
        print(json.dumps({"round": results["round"]}), flush=True)
    if "memory" not in skip:
        results["memory_probe"] = [memory_probe(pipe, judge, device, side, steps) for side in sizes]
        print(json.dumps({"memory_probe": results["memory_probe"]}), flush=True)
    if "swap" not in skip and device.type == "cuda":
        results["memory_probe_swap"] = memory_probe(pipe, judge, device, sizes[-1], steps, offload="swap")
        print(json.dumps({"memory_probe_swap": results["memory_probe_swap"]}), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
