"""Training on the model's own samples with SRUM's weighted loss (SRUM_SPEC §1.7), LoRA or full fine-tuning.

The pieces, in the order a round uses them:

- :func:`attach_adapter` puts LoRA (peft) on ``backend.lora_target_modules()`` of ``backend.trainable_module()``
  — or, with ``TrainingConfig.full_finetune``, makes every parameter trainable and keeps a CPU copy of the
  base weights so the base can be restored.
- :func:`adapter_state` / :func:`load_adapter_state` / :func:`reset_to_base` snapshot and restore the trained
  weights in memory; :func:`save_adapter` / :func:`load_adapter` do the same on disk (safetensors + a JSON
  config, written atomically).
- :func:`train_on_samples` runs the optimiser: AdamW(β 0.9/0.95, eps 1e-15, wd 0 by default), linear warm-up,
  gradient clipping, ``L = mean(w·e) + λ·mean(e)``; one metrics dict per step.

Several processes (``accelerate launch``): every process holds all samples, trains on its share of each
minibatch, and gradients are averaged across processes before the optimiser step, so the weights stay identical
everywhere. :func:`process_info`, :func:`gather_objects` and :func:`barrier` are the small distributed helpers
the round engine and the evaluator share.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainingConfig
from .protocol import ProgressCallback, ProgressEvent
from .rewards import srum_loss
from .types import Sample

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"
ADAPTER_CONFIG_FILE = "adapter_config.json"
LORA_WEIGHTS_FILE = "adapter_model.safetensors"
FULL_WEIGHTS_FILE = "model.safetensors"
_BASE_ATTR = "_srum_base_state"
_KIND_ATTR = "_srum_adapter_kind"


class Cancelled(Exception):
    """Raised when a ``cancel`` event is set; the caller restores the previous state."""


# --------------------------------------------------------------------------------------------------------------
# Processes (single process unless started by ``accelerate launch``)


@dataclass(frozen=True)
class ProcessInfo:
    """This process's place among the processes of a launch (``rank`` 0 of 1 when run plainly)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def process_info() -> ProcessInfo:
    """The current process's rank and world size; joins the process group when launched with several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ProcessInfo()
    from accelerate import PartialState  # lazy: only multi-process launches need it

    # Without a GPU the processes talk over gloo; accelerate needs to be told (its ``--cpu`` flag alone starts a
    # single process unless MPI is installed, so CPU runs use ``--multi_gpu`` with ACCELERATE_USE_CPU=1).
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=use_cpu)
    return ProcessInfo(rank=state.process_index, world_size=state.num_processes)


def shard(items: Sequence[Any], info: ProcessInfo) -> list[tuple[int, Any]]:
    """This process's share of ``items`` as ``(index, item)`` pairs (round-robin: rank, rank + world, ...)."""
    return [(i, item) for i, item in enumerate(items) if i % info.world_size == info.rank]


def gather_objects(pairs: list[tuple[int, Any]], info: ProcessInfo) -> list[Any]:
    """Every process's ``(index, item)`` pairs, gathered on all processes and put back in index order."""
    if info.distributed:
        from accelerate.utils import gather_object

        pairs = list(gather_object(pairs))
    return [item for _, item in sorted(pairs, key=lambda pair: pair[0])]


def barrier(info: ProcessInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.distributed:
        torch.distributed.barrier()


def _average_across_processes(tensors: list[torch.Tensor], info: ProcessInfo) -> None:
    if not info.distributed:
        return
    for tensor in tensors:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        tensor.div_(info.world_size)


def _check_in_sync(params: list[torch.nn.Parameter], info: ProcessInfo) -> None:
    """Fail loudly if the processes' weights drifted apart (they must stay identical after averaged steps)."""
    if not info.distributed:
        return
    checksum = torch.stack([p.detach().double().sum() for p in params]).sum()
    low, high = checksum.clone(), checksum.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"weights differ across processes after training (checksums {float(low)} vs {float(high)})")


# --------------------------------------------------------------------------------------------------------------
# Adapters: attach, snapshot, restore, save, load


def adapter_kind(backend: Any) -> str | None:
    """``"lora"``, ``"full"`` or None (nothing attached yet) for ``backend``'s trainable module."""
    return getattr(backend.trainable_module(), _KIND_ATTR, None)


def _lora_config(backend: Any, config: TrainingConfig) -> Any:
    from peft import LoraConfig

    targets = backend.lora_target_modules()
    if not targets:
        raise ValueError(f"backend {backend.name!r} names no LoRA target modules; use full_finetune=True instead")
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.effective_lora_alpha,
        lora_dropout=0.0,
        target_modules=list(targets) if not isinstance(targets, str) else targets,
        bias="none",
    )


def attach_adapter(backend: Any, config: TrainingConfig) -> torch.nn.Module:
    """Make ``backend``'s trainable module trainable as ``config`` asks; idempotent for the same adapter shape.

    LoRA: peft layers are injected in place (base weights frozen), initialised from ``config.seed`` so the same
    seed gives the same adapter. Full fine-tuning: all parameters train; a CPU copy of the base weights is kept
    for :func:`reset_to_base`. Raises if a different adapter (kind or rank) is already attached.
    """
    module = backend.trainable_module()
    wanted = "full" if config.full_finetune else "lora"
    current = getattr(module, _KIND_ATTR, None)
    if current is not None:
        if current != wanted:
            raise ValueError(
                f"backend already carries a {current!r} adapter; a {wanted!r} round needs a freshly loaded backend "
                "(or set full_finetune to match the run you resume)"
            )
        if wanted == "lora":
            have = module.peft_config[ADAPTER_NAME]
            if have.r != config.lora_rank or float(have.lora_alpha) != config.effective_lora_alpha:
                raise ValueError(
                    f"backend carries a LoRA adapter of rank {have.r} (alpha {have.lora_alpha}) but the round asks "
                    f"for rank {config.lora_rank} (alpha {config.effective_lora_alpha}); resume with the same rank "
                    "or start from a freshly loaded backend"
                )
        return module
    if wanted == "full":
        setattr(module, _BASE_ATTR, {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()})
        module.requires_grad_(True)
    else:
        from peft import inject_adapter_in_model

        inject_adapter_in_model(_lora_config(backend, config), module, adapter_name=ADAPTER_NAME)
        setattr(module, _KIND_ATTR, wanted)
        init_adapter(backend, config.seed)
        n_lora = sum(p.numel() for p in module.parameters() if p.requires_grad)
        logger.info("attached LoRA rank %d to %s: %d trainable parameters", config.lora_rank, backend.name, n_lora)
    setattr(module, _KIND_ATTR, wanted)
    return module


def init_adapter(backend: Any, seed: int) -> None:
    """Give the attached adapter the fresh starting weights of a round seeded ``seed``.

    LoRA: every ``A`` matrix is redrawn (peft's default Kaiming-uniform) from a CPU generator seeded ``seed`` and
    every ``B`` is zeroed, in module order, so a round started from the base model depends only on its seed — not
    on which rounds ran earlier in the process, nor on the device. Full fine-tuning: the base weights.
    """
    kind = adapter_kind(backend)
    if kind is None:
        raise ValueError("backend has no adapter attached: call attach_adapter(backend, config) first")
    if kind == "full":
        reset_to_base(backend)
        return
    from peft.tuners.lora import LoraLayer

    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, layer in backend.trainable_module().named_modules():
            if isinstance(layer, LoraLayer) and ADAPTER_NAME in layer.lora_A:
                a = layer.lora_A[ADAPTER_NAME].weight
                fresh = torch.empty(a.shape, dtype=torch.float32)
                torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
                a.copy_(fresh.to(device=a.device, dtype=a.dtype))
                layer.lora_B[ADAPTER_NAME].weight.zero_()


@contextmanager
def zero_adapter_bypassed(backend: Any) -> Iterator[bool]:
    """Inference without the LoRA layers while they add exactly nothing (every ``B`` is zero).

    A LoRA layer adds ``B·A·x`` to its base layer's output; with ``B = 0`` that is an exact zero, so switching the
    layers off changes no output bit and skips their matmuls (a round from the base model generates and judges
    through them otherwise). Yields whether the layers were switched off: never for full fine-tuning, with no
    adapter, or when any ``B`` is non-zero. The layers and their ``requires_grad`` flags are restored on exit.
    """
    if not hasattr(backend, "trainable_module") or adapter_kind(backend) != "lora":
        yield False
        return
    from peft.tuners.lora import LoraLayer

    layers = [m for m in backend.trainable_module().modules() if isinstance(m, LoraLayer) and ADAPTER_NAME in m.lora_B]
    if not layers or any(bool(m.lora_B[ADAPTER_NAME].weight.any()) for m in layers):
        yield False
        return
    if all(m.disable_adapters for m in layers):  # already switched off by an enclosing call: leave it to that one
        yield True
        return
    grads = {id(p): p.requires_grad for m in layers for p in m.parameters()}
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield True
    finally:
        for layer in layers:
            layer.enable_adapters(True)
            for param in layer.parameters():
                param.requires_grad_(grads[id(param)])


def trainable_parameters(backend: Any) -> list[torch.nn.Parameter]:
    """The parameters an optimiser should update (LoRA weights, or everything for full fine-tuning)."""
    params = [p for p in backend.trainable_module().parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: call attach_adapter(backend, config) first")
    return params


def adapter_state(backend: Any) -> dict[str, torch.Tensor]:
    """A CPU copy of the trained weights: the peft LoRA state dict, or the full state dict."""
    module = backend.trainable_module()
    kind = adapter_kind(backend)
    if kind == "lora":
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(module, adapter_name=ADAPTER_NAME)
    elif kind == "full":
        state = module.state_dict()
    else:
        raise ValueError("backend has no adapter attached: call attach_adapter(backend, config) first")
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def load_adapter_state(backend: Any, state: dict[str, torch.Tensor]) -> None:
    """Put weights from :func:`adapter_state` (or :func:`load_adapter`'s file) back into the backend, exactly."""
    module = backend.trainable_module()
    kind = adapter_kind(backend)
    if kind == "lora":
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(module, state, adapter_name=ADAPTER_NAME)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"adapter does not fit this backend: missing {missing[:3]}, unexpected {list(result.unexpected_keys)[:3]}"
                " — was it trained on another backend or LoRA target list?"
            )
    elif kind == "full":
        module.load_state_dict(state, strict=True)
    else:
        raise ValueError("backend has no adapter attached: call attach_adapter(backend, config) first")


def reset_to_base(backend: Any) -> None:
    """Restore the base model: LoRA B-weights to zero (LoRA adds exactly nothing), or the saved base weights."""
    module = backend.trainable_module()
    kind = adapter_kind(backend)
    if kind is None:
        return
    if kind == "full":
        module.load_state_dict(getattr(module, _BASE_ATTR), strict=True)
        return
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, LoraLayer) and ADAPTER_NAME in layer.lora_B:
                layer.lora_B[ADAPTER_NAME].weight.zero_()


def _json_safe(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if hasattr(value, "value") and type(value).__module__.startswith("peft"):
        return value.value  # peft enums
    return value


def save_adapter(backend: Any, directory: str | os.PathLike[str], config: TrainingConfig) -> Path:
    """Write the trained weights to ``directory`` (safetensors + ``adapter_config.json``), atomically.

    LoRA files follow peft's layout (``adapter_model.safetensors`` + ``adapter_config.json``, keys as
    ``get_peft_model_state_dict`` gives them); full fine-tuning writes ``model.safetensors``. The directory must
    not exist; it appears complete or not at all.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"adapter folder {directory} already exists; choose a new folder")
    kind = adapter_kind(backend)
    state = adapter_state(backend)
    meta: dict[str, Any] = {"srum_kind": kind, "backend": backend.name, "training": config.to_dict()}
    if kind == "lora":
        meta.update(_json_safe(backend.trainable_module().peft_config[ADAPTER_NAME].to_dict()))
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        weights_file = LORA_WEIGHTS_FILE if kind == "lora" else FULL_WEIGHTS_FILE
        save_file(state, str(tmp / weights_file), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_adapter_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON config saved beside an adapter's weights."""
    path = Path(directory) / ADAPTER_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {directory} is not an adapter folder written by save_adapter")
    return json.loads(path.read_text(encoding="utf-8"))


def load_adapter(backend: Any, directory: str | os.PathLike[str]) -> TrainingConfig:
    """Attach (if needed) and load the adapter saved in ``directory``; returns the TrainingConfig it was saved with."""
    from safetensors.torch import load_file

    meta = read_adapter_config(directory)
    if meta.get("backend") != backend.name:
        raise ValueError(
            f"adapter in {directory} was trained on backend {meta.get('backend')!r}, not {backend.name!r}; "
            "load it with the backend it was trained on"
        )
    config = TrainingConfig(**meta["training"])
    attach_adapter(backend, config)
    weights_file = LORA_WEIGHTS_FILE if meta["srum_kind"] == "lora" else FULL_WEIGHTS_FILE
    load_adapter_state(backend, load_file(str(Path(directory) / weights_file)))
    return config


# --------------------------------------------------------------------------------------------------------------
# The optimiser loop


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
    """Learning rate at 0-based ``step``: linear warm-up over ``warmup_steps`` (step 0 → lr/warmup), then flat."""
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
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
            _average_across_processes([p.grad for p in params] + [values], info)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
            optimizer.step()
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
    _check_in_sync(params, info)
    return TrainResult(steps=len(metrics), metrics=tuple(metrics), n_samples=len(samples))
