"""Train TinyUMM v2 (the embedded MoT unified model) from scratch on the synthetic world, on a CPU.

    python -m srum_core.tinyumm.train --out assets/tiny-umm [--steps N] [--minutes M] [--seed 0] [--tiny]

Every step draws a fresh mixed batch from the world (srum_core.tinyumm.data) and trains both experts at once:

- generation expert: rectified-flow velocity regression (x0 head) on renders of *train*-split prompts under
  *noisy* captions (srum_core.world.captions, rates in ``training_config.json``); ``plan_p`` of them also see
  their exact plan (think mode), ``cond_dropout`` the null condition (CFG); logit-normal timesteps, shifted;
- understanding expert: with *exact* prompts — the ``<ask>`` yes/no judgement against near misses, one region
  query per object ("an object the prompt asks for?" + its attributes), per-patch labels, and the planner
  (next plan object given the prompt and the plan so far).

The learning rate warms up, then follows a cosine to ``lr_min_ratio`` of its peak at ``--steps``; matmuls run
under bf16 autocast on CPUs that have it (``--no-bf16`` for float32). Reproducible: everything random flows from
``--seed``, and the schedule is by step, so the step sequence is fixed by the seed; ``--minutes`` only stops a
run early on a slow machine. The EMA weights are saved every ``--save-every`` minutes and at the end, with a model
card (README.md) and ``samples.png`` (plain and think mode side by side).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..world.captions import CaptionNoise
from .data import IGNORE, DataConfig, WorldSampler, tensor_to_uint8, world_classes
from .tokenizer import WordTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRunConfig:
    """Architecture, data and optimisation of one training run (the defaults are the shipped model's)."""

    d_model: int = 160
    n_layers: int = 6
    n_heads: int = 4
    max_text_len: int = 16
    gen_batch: int = 32
    und_batch: int = 32
    lr: float = 6e-4
    warmup_steps: int = 300
    #: After warm-up the learning rate follows a cosine from ``lr`` down to ``lr_min_ratio · lr`` at ``steps``.
    lr_min_ratio: float = 0.05
    #: bf16 autocast for the matmuls (fp32 master weights, fp32 attention and losses).
    bf16: bool = True
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    timestep_shift: float = 2.0
    w_yes: float = 1.0
    w_region: float = 1.0
    w_attr: float = 0.25
    w_patch: float = 0.25
    w_plan: float = 0.5
    steps: int = 14000
    minutes: float = 88.0
    save_every_min: float = 10.0
    log_every: int = 50
    seed: int = 0
    threads: int = 2
    sample_steps: int = 20
    sample_guidance: float = 3.0
    data: DataConfig = field(default_factory=DataConfig)
    #: Continue from these weights (a folder written by this script) instead of a fresh init.
    init_from: str | None = None
    #: "cpu" (the shipped weights' budget: 2 CPU threads) or a torch device such as "cuda" for experiments.
    #: Randomness is drawn on the CPU either way, so the data and noise streams are the same.
    device: str = "cpu"
    #: Data worker processes (0: draw in the training process — the shipped, reproducible stream; > 0: faster
    #: on a many-core machine, with another data stream per worker).
    workers: int = 0
    #: Experiments only: run the warm-up + cosine schedule over ``minutes`` of wall-clock instead of ``steps``
    #: (a fixed time budget on a machine of unknown speed; not reproducible step for step).
    schedule_by_time: bool = False
    #: Stop after this many optimiser steps while the schedule still runs over ``steps`` (None: at ``steps``).
    #: The shipped v3 run stopped at step 2,500 of a 3,000-step schedule; stopping by step keeps a rerun the same.
    stop_step: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            object.__setattr__(self, "data", DataConfig(**self.data))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.gen_batch < 1 or self.und_batch < 1:
            raise ValueError("gen_batch and und_batch must both be ≥ 1 (the model trains both abilities)")
        if self.minutes <= 0 or self.steps < 1:
            raise ValueError("minutes must be > 0 and steps ≥ 1")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError("cond_dropout must lie in [0, 1)")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError("ema_decay must lie in (0, 1)")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ValueError("lr_min_ratio must lie in [0, 1]")
        if self.stop_step is not None and not 1 <= self.stop_step <= self.steps:
            raise ValueError(f"stop_step={self.stop_step} must lie in [1, steps={self.steps}] (or None)")


#: A few-second configuration for tests and smoke runs.
TINY = TrainRunConfig(
    d_model=32, n_layers=2, n_heads=2, gen_batch=4, und_batch=4, warmup_steps=2, steps=6, minutes=1.0,
    save_every_min=10.0, log_every=2, ema_decay=0.9, sample_steps=2, bf16=False,
)


#: The v3 model: the v2 weights (``TrainRunConfig()``, from scratch) trained on with think-mode realism — the
#: planner learns plans with one realistic mistake in 35% of prompts, the generation expert misses a right plan
#: in 10% of its plan-conditioned examples, and half of the judge's near misses are the right layout with one
#: mistake (flipped relations weighted 3×). ``--recipe v3 --init-from V2_FOLDER``.
#: Its schedule runs over 3,000 steps and it stops at step 2,500, where the shipped run stopped (by its then
#: 60-minute limit); ``minutes`` is now only a safety stop well above the ~60 minutes it takes on 2 cores.
V3_STAGE = TrainRunConfig(
    lr=3e-4, warmup_steps=100, steps=3000, stop_step=2500, minutes=150.0, bf16=False,
    data=DataConfig(plan_error_p=0.35, plan_follow_error_p=0.1, edit_negative_p=0.5),
)

#: Named recipes of ``--recipe``.
RECIPES: dict[str, TrainRunConfig] = {"v2": TrainRunConfig(), "v3": V3_STAGE}


def build_model(config: TrainRunConfig):
    """A fresh TinyUMM and its tokenizer for ``config``."""
    from ..world.prompts import VOCAB
    from ..world.spec import GRID, IMAGE_SIZE, SLOT
    from .model import TinyUMM

    colors, shapes, textures, sizes = world_classes()
    tokenizer = WordTokenizer(VOCAB, config.max_text_len)
    model = TinyUMM(
        vocab=list(tokenizer.vocab), colors=list(colors), shapes=list(shapes), textures=list(textures),
        sizes=list(sizes), max_text_len=config.max_text_len, image_size=IMAGE_SIZE, patch_size=SLOT, grid_size=GRID,
        d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads, flow_shift=config.timestep_shift,
    )
    return model, tokenizer


def _masked_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over non-IGNORE targets; 0 (with grad) when every target is ignored."""
    flat_t = target.reshape(-1)
    keep = flat_t != IGNORE
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1])[keep].float(), flat_t[keep])


def layout_tensor(model, plans: list) -> torch.Tensor:
    from .sampling import layout_tensor as _layout

    return _layout(model, plans)


def plan_inputs(model, plans: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Plan tokens for a batch where some rows have no plan (``None``: their plan positions are masked)."""
    from .sampling import plan_tensor

    plan, mask = plan_tensor(model, [p if p is not None else [] for p in plans])
    for row, p in enumerate(plans):
        if p is None:
            mask[row] = False
    return plan, mask


def plan_targets(model, plan: torch.Tensor, plan_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Next-token targets ``(B, Q)`` per field: position j predicts plan row j + 1 (an object, or </think> whose
    attributes are ignored); positions with nothing after them are ignored."""
    nxt = torch.cat([plan[:, 1:], plan[:, :1]], dim=1)
    valid = torch.cat([plan_mask[:, 1:], torch.zeros_like(plan_mask[:, :1])], dim=1)
    out = {}
    for i, key in enumerate(("slot", "color", "shape", "size", "texture")):
        target = nxt[..., i].clone()
        keep = valid if key == "slot" else valid & (nxt[..., 0] < model.n_slots)
        target[~keep] = IGNORE
        out[key] = target
    return out


def draw_batches(sampler: WorldSampler, config: TrainRunConfig, gen: torch.Generator) -> tuple[dict, dict]:
    """One step's data: ``(generation batch, understanding batch)``."""
    return sampler.generation_batch(config.gen_batch, config.cond_dropout), sampler.understanding_batch(config.und_batch, gen)


class _Batches(torch.utils.data.IterableDataset):
    """Endless ``(generation, understanding)`` batches from a worker process (``--workers``, experiments)."""

    def __init__(self, config: TrainRunConfig):
        self.config = config

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        seed = self.config.seed * 1000 + (info.id if info is not None else 0) + 1
        sampler = WorldSampler(self.config.data, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        while True:
            yield draw_batches(sampler, self.config, gen)


def training_step(model, tokenizer, batches: tuple[dict, dict], config: TrainRunConfig, gen: torch.Generator) -> tuple:
    """One mixed batch → ``(total loss, metrics dict)``."""
    from .model import flow_timesteps, patchify

    dev = torch.device(config.device)
    p = model.config.patch_size
    g, u = batches
    # ---- generation expert: noisy captions, sometimes an exact plan.
    x0 = patchify(g["images"], p).to(dev)
    t = flow_timesteps(config.gen_batch, gen, config.timestep_shift).to(dev)
    eps = torch.randn(x0.shape, generator=gen).to(dev)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * eps
    ids, mask = tokenizer.encode(g["texts"])
    plan, plan_mask = plan_inputs(model, g["plans"])
    text = model.encode_text(ids.to(dev), mask.to(dev), plan.to(dev), plan_mask.to(dev))
    v = model.velocity(text, xt, t, layout_tensor(model, g["plans"]).to(dev))
    gen_loss = F.mse_loss(v.float(), eps - x0)

    # ---- understanding expert: exact prompts, near misses, regions, planner.
    ids, mask = tokenizer.encode(u["texts"])
    plan, plan_mask = plan_inputs(model, u["plans"])
    text = model.encode_text(ids.to(dev), mask.to(dev), plan.to(dev), plan_mask.to(dev))
    logits = model.plan_logits(text)
    targets = plan_targets(model, plan, plan_mask)
    plan_loss = sum(_masked_ce(logits[k], targets[k].to(dev)) for k in targets)
    boxes, box_mask = u["boxes"].to(dev), u["box_mask"].to(dev)
    out = model.understand(text, patchify(u["images"], p).to(dev), boxes, box_mask)
    yes_loss = F.binary_cross_entropy_with_logits(out["yes"].float(), u["yes"].to(dev))
    m = box_mask.float()
    reg_yes = (F.binary_cross_entropy_with_logits(out["region_yes"].float(), u["region_yes"].to(dev),
                                                  reduction="none") * m).sum() / m.sum().clamp(min=1)
    reg_obj = (F.binary_cross_entropy_with_logits(out["region_object"].float(), u["region_object"].to(dev),
                                                  reduction="none") * m).sum() / m.sum().clamp(min=1)
    reg_attr = sum(_masked_ce(out[f"region_{k}"], u[f"region_{k}"].to(dev)) for k in ("color", "shape", "texture", "size"))
    patch_loss = F.binary_cross_entropy_with_logits(out["object"].float(), u["object"].to(dev)) + sum(
        _masked_ce(out[k], u[k].to(dev)) for k in ("color", "shape", "texture", "size")
    )
    total = (gen_loss + config.w_yes * yes_loss + config.w_region * (reg_yes + reg_obj) + config.w_attr * reg_attr
             + config.w_patch * patch_loss + config.w_plan * plan_loss)
    with torch.no_grad():
        yes_acc = ((out["yes"] > 0).float().cpu() == u["yes"]).float().mean()
        keep = u["box_mask"]
        region_acc = ((out["region_yes"] > 0).float().cpu()[keep] == u["region_yes"][keep]).float().mean()
        slot_t = targets["color"]
        plan_color_acc = (logits["color"].argmax(-1).cpu()[slot_t != IGNORE] == slot_t[slot_t != IGNORE]).float().mean()
        end_t = targets["slot"]
        is_end = (end_t == model.n_slots)
        plan_end_acc = ((logits["slot"].argmax(-1).cpu() == model.n_slots)[end_t != IGNORE]
                        == is_end[end_t != IGNORE]).float().mean()
    named = {"loss": total, "gen_loss": gen_loss, "yes_loss": yes_loss, "region_loss": reg_yes, "region_obj_loss": reg_obj,
             "region_attr_loss": reg_attr, "patch_loss": patch_loss, "plan_loss": plan_loss, "yes_acc": yes_acc,
             "region_acc": region_acc, "plan_color_acc": plan_color_acc, "plan_end_acc": plan_end_acc}
    return total, {k: float(v.detach()) for k, v in named.items()}


def learning_rate(config: TrainRunConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine from ``lr`` to ``lr_min_ratio · lr`` at ``steps``."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
    floor = config.lr_min_ratio
    return config.lr * warm * (floor + (1.0 - floor) * 0.5 * (1.0 + np.cos(np.pi * progress)))


def _save(model, out: Path) -> None:
    """Save via a temporary folder and rename file by file, so a reader never sees half a checkpoint."""
    tmp = out / ".partial"
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).to("cpu")
    model.save_pretrained(tmp, safe_serialization=True)
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()


def samples_grid(model, tokenizer, prompts: list[str], seeds: list[int], steps: int, guidance: float):
    """A PIL grid: for each prompt, its plain-mode image then its think-mode image (64 px each, 2 px gaps)."""
    from PIL import Image

    from .model import unpatchify
    from .sampling import sample_patches, sample_plans

    cfg = model.config
    plain = sample_patches(model, tokenizer, prompts, seeds, steps, guidance)
    plans = sample_plans(model, tokenizer, prompts, seeds)
    think = sample_patches(model, tokenizer, prompts, seeds, steps, guidance, plans=plans)
    images = []
    for a, b in zip(plain, think):
        images += [a, b]
    imgs = tensor_to_uint8(unpatchify(torch.stack(images), cfg.patch_size, cfg.image_size).clamp(-1, 1))
    s, cols = cfg.image_size, 8
    rows = (len(imgs) + cols - 1) // cols
    grid = Image.new("RGB", (cols * (s + 2) + 2, rows * (s + 2) + 2), (255, 255, 255))
    for i, im in enumerate(imgs):
        grid.paste(Image.fromarray(im), (2 + (i % cols) * (s + 2), 2 + (i // cols) * (s + 2)))
    return grid


def sample_prompts(seed: int, n: int = 16) -> list[str]:
    """Prompts for the samples grid: two in-distribution evaluation prompts per category, then transfer ones."""
    from ..world.prompts import make_prompts
    from ..world.spec import CATEGORIES

    out = [s.text for c in CATEGORIES for s in make_prompts("eval", c, 2, seed)]
    return (out + [s.text for s in make_prompts("val", None, n, seed)])[:n]


def train(config: TrainRunConfig, out: str | Path, callback=None) -> dict:
    """Run training, writing checkpoints, ``train_log.jsonl``, ``samples.png`` and ``README.md`` under ``out``.

    ``callback``: optional :data:`srum_core.protocol.ProgressCallback`. Returns a summary dict.
    """
    from ..protocol import ProgressEvent

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    sampler = WorldSampler(config.data, seed=config.seed)
    model, tokenizer = build_model(config)
    model.to(config.device)
    if config.init_from is not None:
        from .model import TinyUMM

        start = TinyUMM.from_pretrained(config.init_from)
        model.load_state_dict(start.state_dict())  # copies into the parameters already on config.device
    n_params = sum(p.numel() for p in model.parameters())
    (out / "training_config.json").write_text(json.dumps(asdict(config), indent=2))
    log_path = out / "train_log.jsonl"
    log_path.write_text("")
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.99), weight_decay=config.weight_decay)
    stream = None
    if config.workers > 0:
        loader = torch.utils.data.DataLoader(_Batches(config), batch_size=None, num_workers=config.workers,
                                             prefetch_factor=4, persistent_workers=True)
        stream = iter(loader)
    t0 = time.monotonic()
    last_save = t0
    step = 0
    window: list[dict] = []
    metrics: dict = {}
    last_step = config.steps if config.stop_step is None else config.stop_step
    while step < last_step and (time.monotonic() - t0) < config.minutes * 60:
        if config.schedule_by_time:
            frac = (time.monotonic() - t0) / (config.minutes * 60)
            lr = learning_rate(config, int(config.warmup_steps + frac * (config.steps - config.warmup_steps))
                               if step >= config.warmup_steps else step)
        else:
            lr = learning_rate(config, step)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        batches = next(stream) if stream is not None else draw_batches(sampler, config, gen)
        with torch.autocast(torch.device(config.device).type, dtype=torch.bfloat16, enabled=config.bf16):
            loss, m = training_step(model, tokenizer, batches, config, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))  # warm EMA start
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        step += 1
        m["grad_norm"] = float(grad_norm)
        window.append(m)
        if step % config.log_every == 0 or step == config.steps:
            metrics = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            window = []
            metrics.update(step=step, lr=lr, elapsed_s=round(time.monotonic() - t0, 1))
            with log_path.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            logger.info("step %d %s", step, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
            if callback is not None:
                callback(ProgressEvent("train", step, config.steps, metrics=dict(metrics)))
        if time.monotonic() - last_save > config.save_every_min * 60:
            _save(ema, out)
            last_save = time.monotonic()
            logger.info("checkpoint at step %d", step)
    train_s = time.monotonic() - t0
    _save(ema, out)
    ema_cpu = ema.to("cpu")
    prompts = sample_prompts(config.seed)
    grid = samples_grid(ema_cpu, tokenizer, prompts, list(range(len(prompts))), config.sample_steps,
                        config.sample_guidance)
    grid.save(out / "samples.png")
    summary = {
        "steps": step, "train_seconds": round(train_s, 1), "parameters": n_params,
        "parameters_generation_expert": sum(p.numel() for p in ema_cpu.gen.parameters()),
        "parameters_understanding_expert": sum(p.numel() for p in ema_cpu.und.parameters()),
        "images_seen_generation": step * config.gen_batch, "images_seen_understanding": step * config.und_batch,
        "final_metrics": metrics, "sample_prompts": prompts, "init_from": config.init_from,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    from .card import write_model_card

    write_model_card(out, config, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srum_core.tinyumm.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder for config.json, safetensors, card, samples")
    parser.add_argument("--minutes", type=float, default=None, help="safety stop: wall-clock budget of the loop")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (the schedule's length)")
    parser.add_argument("--stop-step", type=int, default=None,
                        help="stop after this many steps, the schedule still over --steps (v3: 2500 of 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of all randomness (world, noise, init)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2)")
    parser.add_argument("--tiny", action="store_true", help="a few-second toy configuration (tests, smoke runs)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="v2",
                        help="v2: the from-scratch stage (default); v3: the think-realism stage, with --init-from "
                             "the v2 weights")
    parser.add_argument("--force", action="store_true", help="write into --out even if it already holds weights")
    parser.add_argument("--init-from", default=None, help="continue from the weights in this folder")
    parser.add_argument("--gen-batch", type=int, default=None, help="generation images per step")
    parser.add_argument("--und-batch", type=int, default=None, help="understanding images per step")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps")
    parser.add_argument("--device", default=None, help="torch device (default cpu; e.g. cuda for experiments)")
    parser.add_argument("--d-model", type=int, default=None, help="model width")
    parser.add_argument("--n-layers", type=int, default=None, help="layers per expert")
    parser.add_argument("--timestep-shift", type=float, default=None, help="shift of the logit-normal timesteps")
    parser.add_argument("--plan-p", type=float, default=None, help="share of generation examples with their plan")
    parser.add_argument("--noise-scale", type=float, default=None,
                        help="multiply every caption-noise rate by this (0 = exact captions)")
    parser.add_argument("--schedule-by-time", action="store_true", default=None,
                        help="experiments: spread the lr schedule over --minutes of wall-clock instead of --steps")
    parser.add_argument("--workers", type=int, default=None, help="data worker processes (experiments; 0 = shipped)")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", default=None,
                        help="train in float32 (default: bf16 autocast for the matmuls)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TINY if args.tiny else RECIPES[args.recipe]
    if args.tiny and args.recipe != "v2":
        config = replace(TINY, data=RECIPES[args.recipe].data)
    if args.recipe == "v3" and args.init_from is None:
        parser.error("--recipe v3 continues the v2 weights: pass --init-from V2_FOLDER")
    changes: dict = {"seed": args.seed}
    for name in ("minutes", "steps", "threads", "init_from", "gen_batch", "und_batch", "lr", "warmup_steps", "bf16",
                 "device", "d_model", "n_layers", "timestep_shift", "workers", "schedule_by_time", "stop_step"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    data = config.data
    if args.plan_p is not None:
        data = replace(data, plan_p=args.plan_p)
    if args.noise_scale is not None:
        rates = {k: min(1.0, v * args.noise_scale) for k, v in data.caption_noise.to_dict().items()}
        data = replace(data, caption_noise=CaptionNoise(**rates))
    changes["data"] = data
    try:
        config = replace(config, **changes)
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    if (out / "config.json").exists() and not args.force and args.init_from != args.out:
        parser.error(f"{out} already holds a model; pass --force to overwrite it")
    summary = train(config, out)
    logger.info("summary %s", json.dumps({k: v for k, v in summary.items() if k != "sample_prompts"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
