"""Training on the model's own samples with SRUM's weighted loss (SRUM_SPEC §1.7): the optimiser loop.

:func:`train_on_samples` runs AdamW (β 0.9/0.95, eps 1e-15, wd 0 by default) with a linear warm-up (then flat or
a cosine), an optional EMA of the trained weights swapped in at the end, and gradient clipping on ``L = mean(w·e) + λ·mean(e)``, one metrics dict per step. The adapter it updates (LoRA or full
fine-tuning) is attached beforehand by :mod:`srum_core.adapters`.

Several processes (``accelerate launch``): every process holds all samples, trains on its share of each
minibatch, and gradients are averaged across processes (:mod:`srum_core.distributed`) before the optimiser step,
so the weights stay identical everywhere.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .adapters import trainable_parameters
from .config import TrainingConfig
from .distributed import ProcessInfo, average_across_processes, check_in_sync
from .protocol import Cancelled, ProgressCallback, ProgressEvent
from .rewards import srum_loss
from .types import Sample

logger = logging.getLogger(__name__)


def make_optimizer(params: Sequence[torch.nn.Parameter], config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW at SRUM's released settings (β 0.9/0.95, eps 1e-15, wd 0) unless ``config`` says otherwise."""
    return torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        weight_decay=config.weight_decay,
    )


def lr_at(step: int, config: TrainingConfig) -> float:
    """Learning rate at 0-based ``step``: linear warm-up over ``warmup_steps`` (step 0 → lr/warmup), then flat
    (``lr_schedule="constant"``) or a cosine down to ``lr_min_ratio · lr`` at the last step (``"cosine"``)."""
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        span = max(1, config.steps - 1 - config.warmup_steps)
        progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
        floor = config.lr_min_ratio
        return config.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + float(np.cos(np.pi * progress))))
    return config.lr


def _loss_kwargs(backend: Any, config: TrainingConfig) -> dict[str, Any]:
    """The training knobs the backend's ``token_losses`` accepts (the protocol requires only ``generator``)."""
    params = inspect.signature(backend.token_losses).parameters
    wanted = {"timestep_shift": config.timestep_shift, "cond_dropout": config.cond_dropout, "config": config}
    return {k: v for k, v in wanted.items() if k in params and v is not None}


def batch_order(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Sample indices for each step: a seeded permutation, reshuffled each epoch; a batch never exceeds ``n``."""
    if n <= 0:
        return []
    rng = np.random.default_rng(seed)
    size = min(batch_size, n)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        if len(order) < size:
            order += [int(i) for i in rng.permutation(n)]
        batches.append(order[:size])
        order = order[size:]
    return batches


@dataclass(frozen=True)
class TrainResult:
    """``steps`` done and one metrics dict per step (loss, reward_term, constraint_term, lr, grad_norm)."""

    steps: int
    metrics: tuple[dict[str, float], ...]
    n_samples: int


def train_on_samples(
    backend: Any,
    samples: Sequence[Sample],
    weights: np.ndarray,
    config: TrainingConfig,
    *,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    info: ProcessInfo | None = None,
) -> TrainResult:
    """``config.steps`` AdamW steps of ``L = mean((w + λ)·e)`` on ``samples`` (their payloads) and token weights.

    ``weights``: ``(len(samples), N)`` float token weights (row-major token grid, from the reward maps).
    The adapter must already be attached. Raises :class:`Cancelled` between steps when ``cancel`` is set; the
    caller restores the previous weights.
    """
    info = info or ProcessInfo()
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape[0] != len(samples):
        raise ValueError(f"got {len(samples)} samples but {weights.shape[0]} weight rows; give one row per sample")
    if not samples or config.steps == 0:
        return TrainResult(steps=0, metrics=(), n_samples=len(samples))
    params = trainable_parameters(backend)
    optimizer = make_optimizer(params, config)
    kwargs = _loss_kwargs(backend, config)
    # Timesteps and noise differ per process (each trains on different samples) but are fixed by the seed.
    generator = torch.Generator().manual_seed(config.seed * 1009 + info.rank)
    module = backend.trainable_module()
    module.train()
    metrics = []
    # EMA of the trained weights (identical on every process: the weights are), swapped in at the end.
    ema = [p.detach().clone() for p in params] if config.ema_decay > 0 else None
    try:
        for step, batch in enumerate(batch_order(len(samples), config.steps, config.batch_size, config.seed)):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"training cancelled before step {step + 1}/{config.steps}")
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            mine = batch[info.rank :: info.world_size]
            optimizer.zero_grad(set_to_none=False)
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)  # a process with no sample this step still joins the average
            if mine:
                errors = backend.token_losses([samples[i] for i in mine], generator, **kwargs)
                w = torch.from_numpy(weights[mine]).to(errors.device)
                terms = srum_loss(errors, w, config.lam)
                # Scale so the averaged gradient equals the gradient of the whole minibatch's mean loss.
                scale = len(mine) * info.world_size / len(batch)
                (terms.total * scale).backward()
                values = torch.stack([terms.total, terms.reward_term, terms.constraint_term]).detach().float()
                values = values.to(params[0].device) * scale
            else:
                values = torch.zeros(3, device=params[0].device)  # on the weights' device: nccl reduces GPU tensors
            average_across_processes([p.grad for p in params] + [values], info)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
            optimizer.step()
            if ema is not None:
                decay = min(config.ema_decay, (1 + step) / (10 + step))  # warm start, as pre-training
                with torch.no_grad():
                    for e, p in zip(ema, params):
                        e.lerp_(p.detach(), 1.0 - decay)
            row = {
                "step": step + 1,
                "loss": float(values[0]),
                "reward_term": float(values[1]),
                "constraint_term": float(values[2]),
                "lr": lr,
                "grad_norm": grad_norm,
            }
            metrics.append(row)
            if callback is not None:
                callback(
                    ProgressEvent(
                        "train", step + 1, config.steps, metrics={k: v for k, v in row.items() if k != "step"}
                    )
                )
    finally:
        module.eval()
        optimizer.zero_grad(set_to_none=True)
    if ema is not None and len(metrics) == config.steps:
        with torch.no_grad():
            for e, p in zip(ema, params):
                p.copy_(e)
    check_in_sync(params, info)
    return TrainResult(steps=len(metrics), metrics=tuple(metrics), n_samples=len(samples))
