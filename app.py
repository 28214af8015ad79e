"""Launch the SRUM Workbench: ``python app.py [--backend sandbox] [--host H] [--port P] [--share]``.

Importing this file builds nothing and loads no weights. A Hugging Face Space (which imports ``app`` and looks
for ``demo``) gets the demo built on first access of ``app.demo``, with the embedded default backend.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

BACKENDS = (
    "sandbox",
    "janus-pro-1b",
    "janus-pro-7b",
    "janus:<hub id or local folder>",
    "bagel",
    "bagel:<hub id or local folder>",
    "pair --generator <id or folder> --judge <id or folder>",
    "pair:<preset> (python -m srum_core backends lists them)",
)


def load_backend(name: str, device: str = "auto", dtype: str | None = None, **options: Any) -> Any:
    """The named backend with its weights loaded (once per process); see :mod:`srum_core.backends`. ``options``:
    the pair backend's generator, judge, judge_mode, offload, image_size."""
    from srum_core.backends import load_backend as load

    return load(name, device=device, dtype=dtype, **options)


def make_demo(
    backend: str = "sandbox",
    device: str = "auto",
    runs_root: str = "runs",
    max_queue: int = 16,
    dtype: str | None = None,
    **options: Any,
) -> Any:
    """Load the backend and build the Workbench UI around it."""
    from workbench.app import build_demo
    from workbench.state import Engine

    engine = Engine(load_backend(backend, device, dtype, **options), runs_root=runs_root, max_queue=max_queue)
    return build_demo(engine)


_demo: Any = None


def __getattr__(name: str) -> Any:
    # Module-level ``demo`` built lazily, so ``import app`` stays free of side effects.
    global _demo
    if name == "demo":
        if _demo is None:
            _demo = make_demo()
        return _demo
    raise AttributeError(f"module 'app' has no attribute {name!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SRUM Workbench: inspect, train and compare SRUM rounds in a browser.")
    parser.add_argument(
        "--backend", default="sandbox", help=f"unified model to load: {', '.join(BACKENDS)} (default: sandbox)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="precision of a real model (auto: bf16 on CUDA)",
    )
    pair = parser.add_argument_group("pair backend (a diffusers generator judged by a vision-language model)")
    pair.add_argument("--generator", default=None, help="diffusers pipeline: hub id, folder or alias (sd35-medium)")
    pair.add_argument("--judge", default=None, help="vision-language judge: hub id, folder or alias (qwen25vl-7b)")
    pair.add_argument("--judge-mode", default=None, choices=("rubric", "likelihood"), help="SRUM's rubric or P(Yes)")
    pair.add_argument(
        "--offload", default=None, choices=("none", "swap"), help="swap: generator and judge take turns on the GPU"
    )
    pair.add_argument("--image-size", type=int, default=None, help="image side (default: the generator's own)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--runs-root", default="runs", help="folder holding run folders (default: ./runs)")
    parser.add_argument(
        "--allow-slow-cpu", action="store_true", help="start a full-size real model even without a GPU (very slow)"
    )
    parser.add_argument("--max-queue", type=int, default=16, help="most events waiting in the shared queue")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from srum_core.backends import PAIR_OPTIONS, cpu_warning

    options = {k: getattr(args, k) for k in PAIR_OPTIONS if getattr(args, k) is not None}
    try:
        warning = cpu_warning(args.backend, args.device, **options)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    if warning and not args.allow_slow_cpu:
        # A full-size model on CPU would take minutes per image: say so instead of appearing to hang.
        print(f"error: {warning}\nPass --allow-slow-cpu to start anyway.", file=sys.stderr)
        raise SystemExit(2)
    try:
        demo = make_demo(args.backend, args.device, args.runs_root, args.max_queue, args.dtype, **options)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    from workbench.app import LAUNCH_OPTIONS

    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    main()
