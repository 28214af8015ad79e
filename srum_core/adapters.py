"""The adapter lifecycle: what training changes on a backend, and how to put it back.

- :func:`attach_adapter` puts LoRA (peft) on ``backend.lora_target_modules()`` of ``backend.trainable_module()``
  — or, with ``TrainingConfig.full_finetune``, makes every parameter trainable and keeps a CPU copy of the base
  weights so the base can be restored. A LoRA adapter of another rank is replaced, so every browser session (or
  run) can train at its own rank on one shared backend.
- :func:`init_adapter` gives the adapter the starting weights of a round seeded ``seed`` (a function of the seed
  alone); :func:`zero_adapter_bypassed` runs inference without LoRA layers that still add exactly nothing.
- :func:`adapter_state` / :func:`load_adapter_state` copy the trained weights out and back in memory;
  :func:`snapshot_adapter` / :func:`restore_adapter` do the same together with the adapter's shape (kind, rank),
  so a restore works whatever was attached in between; :func:`reset_to_base` returns to the base model.
- :func:`save_adapter` / :func:`load_adapter` write and read the weights on disk (safetensors + a JSON config,
  written atomically).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import TrainingConfig

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"
ADAPTER_CONFIG_FILE = "adapter_config.json"
LORA_WEIGHTS_FILE = "adapter_model.safetensors"
FULL_WEIGHTS_FILE = "model.safetensors"
_BASE_ATTR = "_srum_base_state"
_KIND_ATTR = "_srum_adapter_kind"


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


def _remove_lora(module: torch.nn.Module) -> None:
    """Take every LoRA layer out of ``module``, putting its base layer back where it was (base weights untouched)."""
    from peft.tuners.lora import LoraLayer

    wrapped = [(name, layer) for name, layer in module.named_modules() if isinstance(layer, LoraLayer)]
    for name, layer in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, layer.get_base_layer())
    for attr in ("peft_config", _KIND_ATTR):
        if hasattr(module, attr):
            delattr(module, attr)


def detach_adapter(backend: Any) -> None:
    """Take the adapter off the trainable module and restore the base model exactly: LoRA layers removed (their
    base layers put back), or the base weights full fine-tuning kept on the CPU loaded back. Its weights are dropped
    (take a :func:`snapshot_adapter` first if they matter). Nothing attached: nothing happens."""
    module = backend.trainable_module()
    kind = adapter_kind(backend)
    if kind == "full":
        module.load_state_dict(getattr(module, _BASE_ATTR), strict=True)
        delattr(module, _BASE_ATTR)
        delattr(module, _KIND_ATTR)
    elif kind == "lora":
        _remove_lora(module)


def check_train_part(backend: Any, part: str) -> None:
    """Refuse a trained part the backend cannot select: backends with one trainable part (their generation path,
    no ``set_train_part``) accept only ``gen``."""
    if part != "gen" and not hasattr(backend, "set_train_part"):
        raise ValueError(
            f"backend {backend.name!r} trains one part, its generation path; use train_part 'gen' (--train-part gen)"
        )


def select_train_part(backend: Any, part: str) -> None:
    """Point ``backend.trainable_module()`` at the part a round trains: ``gen`` (the generation expert, so the
    judge stays frozen) or ``all`` (see :func:`check_train_part`)."""
    check_train_part(backend, part)
    if hasattr(backend, "set_train_part"):
        backend.set_train_part(part)


def attach_adapter(backend: Any, config: TrainingConfig) -> torch.nn.Module:
    """Make ``backend``'s trainable module carry the adapter ``config`` asks for; returns that module.

    Nothing attached: LoRA layers are injected in place (base weights frozen) and initialised from
    ``config.seed``, or, for full fine-tuning, every parameter trains and a CPU copy of the base weights is kept
    for :func:`reset_to_base`. The same adapter shape already attached: nothing changes (its weights are kept). A
    LoRA adapter of another rank or alpha: replaced by a fresh one of the asked shape — its weights are dropped,
    so take a :func:`snapshot_adapter` first if they matter. Switching between LoRA and full fine-tuning first
    restores the base model (:func:`detach_adapter`; full fine-tuning kept the base weights on the CPU) — the
    previous adapter's weights are dropped the same way. (A round refuses to *resume* a run of the other kind.)
    """
    select_train_part(backend, config.train_part)
    module = backend.trainable_module()
    wanted = "full" if config.full_finetune else "lora"
    current = getattr(module, _KIND_ATTR, None)
    if current is not None and current != wanted:
        logger.info("replacing the %s adapter by a %s one (base weights restored first)", current, wanted)
        detach_adapter(backend)
        current = None
    if current == "full":
        return module
    if current == "lora":
        have = module.peft_config[ADAPTER_NAME]
        if have.r == config.lora_rank and float(have.lora_alpha) == config.effective_lora_alpha:
            return module
        logger.info("replacing the LoRA adapter of rank %d by one of rank %d", have.r, config.lora_rank)
        _remove_lora(module)
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


def adapter_shape(backend: Any) -> dict[str, Any] | None:
    """What is attached: ``{"kind": "lora", "rank": r, "alpha": a}``, ``{"kind": "full"}``, or None; with the
    trained ``"part"`` on backends that have several (the sandbox's ``gen`` or ``all``)."""
    kind = adapter_kind(backend)
    if kind is None:
        return None
    part = {"part": backend.train_part} if hasattr(backend, "set_train_part") else {}
    if kind != "lora":
        return {"kind": kind, **part}
    have = backend.trainable_module().peft_config[ADAPTER_NAME]
    return {"kind": "lora", "rank": int(have.r), "alpha": float(have.lora_alpha), **part}


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


@dataclass(frozen=True)
class AdapterSnapshot:
    """The adapter a backend carried at one moment: its shape (:func:`adapter_shape`; None = nothing attached)
    and a CPU copy of its weights."""

    shape: dict[str, Any] | None
    state: dict[str, torch.Tensor] | None


def snapshot_adapter(backend: Any) -> AdapterSnapshot:
    """What :func:`restore_adapter` needs to put the backend's current adapter back exactly."""
    shape = adapter_shape(backend)
    return AdapterSnapshot(shape=shape, state=adapter_state(backend) if shape is not None else None)


def restore_adapter(backend: Any, snapshot: AdapterSnapshot) -> None:
    """Put back the adapter of ``snapshot``, re-attaching its rank if another was attached since."""
    if snapshot.shape is None:
        reset_to_base(backend)
        return
    part = snapshot.shape.get("part", "gen")
    if snapshot.shape["kind"] == "lora":
        config = TrainingConfig(lora_rank=snapshot.shape["rank"], lora_alpha=snapshot.shape["alpha"], train_part=part)
    else:
        config = TrainingConfig(full_finetune=True, train_part=part)
    attach_adapter(backend, config)
    load_adapter_state(backend, snapshot.state)


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
    ``get_peft_model_state_dict`` gives them); full fine-tuning writes ``model.safetensors``. A backend with an
    ``export_adapter(directory)`` method also writes the weights there in its own library's format (the pair
    backend: diffusers' ``pytorch_lora_weights.safetensors``). The directory must
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
        export = getattr(backend, "export_adapter", None)
        if callable(export):
            export(tmp)  # the same weights in the backend's own library's format, e.g. diffusers' LoRA file
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
    """Attach (at its rank) and load the adapter saved in ``directory``; returns the TrainingConfig it was saved
    with."""
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
