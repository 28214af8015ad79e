"""Load on the shared Workbench: N visitors × M requests on loopback, latency, failures, and isolation.

    python -m bench.load --sessions 8 --requests 20 [--weights shipped|random] [--out bench/out/load.json]

Serves the Workbench in this process on 127.0.0.1 (a fresh temporary runs root; nothing leaves the machine)
and starts N visitors, each its own ``gradio_client`` session in its own thread. While they run, one more
visitor, the trainer, runs a training round. Each visitor sends M requests in a fixed mix: generate and score
(they use the shared model, one at a time through the engine queue), the round history and the runs list, a
SRUM JSONL import, and a bad input (refused with a message; counted as answered, not as a failure).

Reported: p50/p95/max latency overall and per endpoint, failures (any request that did not get its expected
answer), wall time, and an isolation check: every visitor's images at fixed seeds are byte-identical to the base
model's before the load (the trainer's round never reaches them), no visitor lists the trainer's run or anyone
else's, and each history holds only the visitor's own rounds.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

SCORE_ARGS = ("self-grounding", "", "crop", 10, "bilinear", None, None, "released", "pixel")
RECORD = json.dumps(
    {
        "image_file": "a.png",
        "prompt": "a red circle",
        "vlm_rewards": [{"identified_object": "red circle", "score": 0.5, "bbox": [8, 8, 32, 32]}],
        "global_layout_reward": {"global_layout_score": 0.5, "bbox": [0, 0, 64, 64]},
    }
)


def print_table(headers: list[str], rows: list[list[object]]) -> str:
    """A left-aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_backend(weights: str) -> Any:
    from srum_core.backends.sandbox import SandboxBackend, load_sandbox

    if weights == "shipped":
        return load_sandbox(device="cpu")
    import torch

    backend = SandboxBackend.from_random(seed=0, tiny=True)
    # Random weights start with zero-initialised (adaLN-zero) layers, through which LoRA gets no gradient: give
    # them small random values so that a round changes the trainer's images (as tests/test_ui_api.py does).
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in backend.trainable_module().parameters():
            if not param.any():
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
    return backend


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def score_args() -> tuple[Any, ...]:
    from srum_core.config import DEFAULT_GLOBAL_TEMPLATE, DEFAULT_REGION_TEMPLATE

    args = list(SCORE_ARGS)
    args[5], args[6] = DEFAULT_GLOBAL_TEMPLATE, DEFAULT_REGION_TEMPLATE
    return tuple(args)


def image_bytes(value: Any) -> bytes:
    path = value["image"] if isinstance(value, dict) else value
    return Path(path).read_bytes()


def pixel_difference(a: bytes, b: bytes) -> int:
    """The largest difference of one channel of one pixel between two PNG images (0 = identical)."""
    import io

    import numpy as np
    from PIL import Image

    first, second = (np.asarray(Image.open(io.BytesIO(x)).convert("RGB"), dtype=np.int16) for x in (a, b))
    return int(np.abs(first - second).max())


class Visitor:
    """One browser session: its own client, its requests' timings and failures."""

    def __init__(self, url: str, index: int, record_file: str) -> None:
        from gradio_client import Client

        # Its own download folder: clients sharing one would write and read the same file for identical images.
        self.client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix=f"srum-load-visitor{index}-"))
        self.index = index
        self.record_file = record_file
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.failures: list[str] = []
        self.images: dict[int, bytes] = {}

    def call(self, endpoint: str, *args: Any, expect_error: str | None = None) -> Any:
        from gradio_client.exceptions import AppError

        start = time.perf_counter()
        try:
            result = self.client.predict(*args, api_name=f"/{endpoint}")
            if expect_error is not None:
                self.failures.append(f"{endpoint}: expected the error {expect_error!r}, got an answer")
        except AppError as err:
            result = None
            if expect_error is None or expect_error not in str(err):
                self.failures.append(f"{endpoint}: {err}")
        except Exception as err:  # noqa: BLE001 - a failure to count, whatever it is
            result = None
            self.failures.append(f"{endpoint}: {type(err).__name__}: {err}")
        self.timings[endpoint].append(time.perf_counter() - start)
        return result

    def run(self, requests: int, seeds: list[int]) -> None:
        from gradio_client import handle_file

        mix = ["generate", "score", "history", "list_runs", "import_records", "bad_input"]
        for step in range(requests):
            kind = mix[step % len(mix)]
            if kind == "generate":
                seed = seeds[(step // len(mix)) % len(seeds)]
                result = self.call("generate", "a red circle", seed, 4, 3.0)
                if result is not None:
                    self.images[seed] = image_bytes(result[0])
            elif kind == "score":
                self.call("score", *score_args())
            elif kind == "history":
                self.call("history")
            elif kind == "list_runs":
                self.call("list_runs")
            elif kind == "import_records":
                self.call("import_records", handle_file(self.record_file), 0, "released", "pixel", "")
            else:
                self.call("generate", "a red circle", -1, 4, 3.0, expect_error="seed=-1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="concurrent visitors (default 8)")
    parser.add_argument("--requests", type=int, default=20, help="requests per visitor (default 20)")
    parser.add_argument("--weights", choices=("shipped", "random"), default="shipped", help="the sandbox's weights")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    from gradio_client import Client

    from workbench.app import LAUNCH_OPTIONS, build_demo
    from workbench.state import UI_DIR, Engine

    runs_root = Path(tempfile.mkdtemp(prefix="srum-load-"))
    engine = Engine(make_backend(args.weights), runs_root=runs_root, max_queue=4 * (args.sessions + 1))
    demo = build_demo(engine)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **LAUNCH_OPTIONS
    )
    record_file = str(runs_root.parent / f"{runs_root.name}-record.jsonl")
    Path(record_file).write_text(RECORD + "\n", encoding="utf-8")
    seeds = [11, 12]
    try:
        # The base model's images at the visitors' seeds, before anything trains.
        reference = Visitor(url, -1, record_file)
        base_images = {seed: image_bytes(reference.call("generate", "a red circle", seed, 4, 3.0)[0]) for seed in seeds}
        visitors = [Visitor(url, i, record_file) for i in range(args.sessions)]
        trainer = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="srum-load-trainer-"))
        trainer_outcome: dict[str, Any] = {}

        def train() -> None:
            start = time.perf_counter()
            try:
                trainer_outcome["status"] = trainer.predict(
                    "train", None, [], 4, 3, 4, 5e-2, 0.5, "released", 4, 1, 0, 1, "", None, api_name="/train_round"
                )[0]
            except Exception as err:  # noqa: BLE001 - reported below
                trainer_outcome["status"] = f"failed: {err}"
            trainer_outcome["seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        threads = [threading.Thread(target=train)]
        threads += [threading.Thread(target=v.run, args=(args.requests, seeds)) for v in visitors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start

        # Isolation: nobody's images changed, nobody lists another visitor's run, histories hold own rounds only.
        problems: list[str] = []
        trainer_history = trainer.predict(api_name="/history")["data"]
        if len(trainer_history) != 2 or "Round 1 done" not in str(trainer_outcome.get("status")):
            problems.append(f"the trainer's round did not complete: {trainer_outcome.get('status')}")
        for visitor in visitors:
            for seed, data in visitor.images.items():
                if data != base_images[seed]:
                    problems.append(
                        f"visitor {visitor.index}: image at seed {seed} differs from the base model's "
                        f"(max pixel difference {pixel_difference(data, base_images[seed])})"
                    )
            if len(visitor.client.predict(api_name="/history")["data"]) != 1:
                problems.append(f"visitor {visitor.index}: its history holds rounds it did not run")
            private = [r[0] for r in visitor.client.predict(api_name="/list_runs")["data"] if r[0].startswith(UI_DIR)]
            if private:
                problems.append(f"visitor {visitor.index} lists other visitors' runs: {private}")
        trainer_runs = [r[0] for r in trainer.predict(api_name="/list_runs")["data"]]
        if not any(run.startswith(UI_DIR) for run in trainer_runs):
            problems.append("the trainer does not list its own run")
        after = image_bytes(trainer.predict("a red circle", seeds[0], 4, 3.0, api_name="/generate")[0])
        if after == base_images[seeds[0]]:
            problems.append("the trainer's own image did not change after its round")
    finally:
        demo.close()

    timings: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    for visitor in visitors:
        for endpoint, values in visitor.timings.items():
            timings[endpoint] += values
        failures += [f"visitor {visitor.index}: {f}" for f in visitor.failures]
    everything = [t for values in timings.values() for t in values]
    rows = [
        [name, len(values), f"{statistics.median(values):.3f}", f"{percentile(values, 0.95):.3f}", f"{max(values):.3f}"]
        for name, values in sorted(timings.items())
    ]
    rows.append(
        ["all", len(everything), f"{statistics.median(everything):.3f}", f"{percentile(everything, 0.95):.3f}",
         f"{max(everything):.3f}"]
    )  # fmt: skip
    print(f"{args.sessions} sessions × {args.requests} requests on loopback ({args.weights} weights), plus one "
          f"training round by another visitor; wall {wall:.1f} s")  # fmt: skip
    print(print_table(["endpoint", "requests", "p50 s", "p95 s", "max s"], rows))
    print(f"failures: {len(failures)}" + "".join(f"\n  {f}" for f in failures[:20]))
    print(f"training round (concurrent with the visitors): {trainer_outcome.get('seconds', float('nan')):.1f} s")
    print("isolation: " + ("ok" if not problems else "FAILED" + "".join(f"\n  {p}" for p in problems)))
    results = {
        "sessions": args.sessions,
        "requests_per_session": args.requests,
        "weights": args.weights,
        "wall_s": wall,
        "latency_s": {
            name: {"n": len(v), "p50": statistics.median(v), "p95": percentile(v, 0.95), "max": max(v)}
            for name, v in {**timings, "all": everything}.items()
        },
        "failures": failures,
        "training_round_s": trainer_outcome.get("seconds"),
        "isolation_problems": problems,
    }
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {out}")
    return 0 if not failures and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
