"""Device and dtype decided in one place: "auto" → cuda → mps → cpu; fp32 on CPU, bf16 on CUDA."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``mps`` into a ``torch.device``, failing clearly if it is absent."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is visible; use device='cpu' or 'auto'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device='mps' was asked for but MPS is not available; use device='cpu' or 'auto'")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={name!r}: choose auto, cpu, cuda or mps")
    return torch.device(name)


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (SRUM trains in bf16), fp32 elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


#: Precision names accepted by ``--dtype`` ("auto" = :func:`default_dtype`).
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``"auto"``/None → :func:`default_dtype` of ``device``; ``"float32"``, ``"bfloat16"``, ``"float16"`` as named."""
    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        return default_dtype(device)
    if name not in DTYPES:
        raise ValueError(f"dtype={name!r}: choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]
