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
)


def load_backend(name: str, device: str = "auto") -> Any:
    """The named backend with its weights loaded (once per process); see :mod:`srum_core.backends`."""
    from srum_core.backends import load_backend as load

    return load(name, device=device)


def make_demo(backend: str = "sandbox", device: str = "auto", runs_root: str = "runs", max_queue: int = 16) -> Any:
    """Load the backend and build the Workbench UI around it."""
    from workbench.app import build_demo
    from workbench.state import Engine

    return build_demo(Engine(load_backend(backend, device), runs_root=runs_root, max_queue=max_queue))


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
    from srum_core.backends import cpu_warning

    warning = cpu_warning(args.backend, args.device)
    if warning and not args.allow_slow_cpu:
        # A full-size model on CPU would take minutes per image: say so instead of appearing to hang.
        print(f"error: {warning}\nPass --allow-slow-cpu to start anyway.", file=sys.stderr)
        raise SystemExit(2)
    try:
        demo = make_demo(args.backend, args.device, args.runs_root, args.max_queue)
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
