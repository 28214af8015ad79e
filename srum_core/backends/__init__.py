"""Backends: one file per unified model, each implementing :class:`srum_core.protocol.UnifiedModel`.

:func:`load_backend` is the one registry the CLI and the app share. Backend modules are imported only when
asked for, so importing this package loads no model library.
"""

from __future__ import annotations

from typing import Any

#: Names accepted by ``--backend``; ``janus`` needs a model id or path (``--model``, or ``janus:<id>``);
#: ``bagel`` loads BAGEL-7B-MoT unless given other weights (``bagel:<id or folder>`` or ``--model``); ``pair`` is a
#: diffusers generator judged by a vision-language model (``pair:PRESET``, ``pair:GENERATOR+JUDGE``, or
#: ``--generator`` and ``--judge``).
BACKENDS: tuple[str, ...] = ("sandbox", "janus", "janus-pro-1b", "janus-pro-7b", "bagel", "pair")

#: Options only the ``pair`` backend takes (the CLI's and the app's ``--generator``, ``--judge``, ...).
PAIR_OPTIONS: tuple[str, ...] = ("generator", "judge", "judge_mode", "offload", "image_size")


def split_backend_name(name: str, model: str | None = None) -> tuple[str, str | None]:
    """``"janus:ID"`` → ``("janus", "ID")``, ``"bagel:ID"`` → ``("bagel", "ID")``, ``"pair:PRESET"`` →
    ``("pair", "PRESET")``; other names pass through."""
    for kind in ("janus", "bagel", "pair"):
        if name.lower().startswith(kind + ":"):
            return kind, name.split(":", 1)[1] or model
    return name.lower(), model


def _pair_models(spec: str | None, options: dict[str, Any]) -> tuple[str, str]:
    """The generator and judge of a ``pair`` backend: ``--generator``/``--judge`` over the preset's parts."""
    from .pair import PRESETS, split_pair_name

    generator, judge = split_pair_name(spec)
    generator = options.get("generator") or generator
    judge = options.get("judge") or judge
    if not generator or not judge:
        raise ValueError(
            "backend 'pair' needs a generator and a judge: --generator ID_OR_FOLDER --judge ID_OR_FOLDER, or a "
            f"preset pair:NAME ({', '.join(PRESETS)})"
        )
    return generator, judge


def load_backend(
    name: str, device: str = "auto", model: str | None = None, dtype: str | None = None, **options: Any
) -> Any:
    """The named backend with its weights loaded (once per process); ``model`` overrides its default weights,
    ``dtype`` (``auto``, ``float32``, ``bfloat16``, ``float16``) its precision (real models only). ``options``:
    the ``pair`` backend's :data:`PAIR_OPTIONS` (None values are ignored)."""
    kind, model = split_backend_name(name, model)
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(PAIR_OPTIONS))
    if unknown:
        raise ValueError(f"unknown backend options {unknown}; the pair backend takes {', '.join(PAIR_OPTIONS)}")
    if options and kind != "pair":
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise ValueError(f"{flags}: only for --backend pair (this is {name!r})")
    if kind == "pair":
        from .pair import load_pair

        generator, judge = _pair_models(model, options)
        rest = {k: v for k, v in options.items() if k not in ("generator", "judge")}
        return load_pair(generator, judge, device=device, dtype=dtype, **rest)
    torch_dtype = None
    if dtype not in (None, "auto"):
        if kind == "sandbox":
            raise ValueError("--dtype: the sandbox runs in float32; choose a real model for other precisions")
        from ..device import resolve_device, resolve_dtype

        torch_dtype = resolve_dtype(dtype, resolve_device(device))
    if kind == "sandbox":
        from .sandbox import load_sandbox

        return load_sandbox(model, device=device)
    if kind in ("janus", "janus-pro-1b", "janus-pro-7b"):
        from .janus import load_janus

        if kind == "janus" and not model:
            raise ValueError(
                "backend 'janus' needs a model: --model HUB_ID_OR_PATH (or use janus-pro-1b / janus-pro-7b)"
            )
        return load_janus(model or kind, device=device, dtype=torch_dtype)
    if kind == "bagel":
        from .bagel import DEFAULT_MODEL, load_bagel

        return load_bagel(model or DEFAULT_MODEL, device=device, dtype=torch_dtype)
    raise ValueError(
        f"backend {name!r} is unknown; choose one of {', '.join(BACKENDS)} (or janus:<hub id or folder>, "
        "bagel:<hub id or folder>, pair:<preset>)"
    )


def cpu_warning(name: str, device: str = "auto", model: str | None = None, **options: Any) -> str | None:
    """What running backend ``name`` costs on this machine's CPU, when that is prohibitive; None otherwise."""
    kind, model = split_backend_name(name, model)
    if kind.startswith("janus"):
        from .janus import janus_cpu_warning

        return janus_cpu_warning(model or kind, device)
    if kind == "bagel":
        from .bagel import DEFAULT_MODEL, bagel_cpu_warning

        return bagel_cpu_warning(model or DEFAULT_MODEL, device)
    if kind == "pair":
        from .pair import pair_cpu_warning

        generator, judge = _pair_models(model, {k: v for k, v in options.items() if v is not None})
        size = options.get("image_size")
        return pair_cpu_warning(generator, judge, device, side=int(size) if size else 1024)
    return None
