"""Train several TinyUMM configurations side by side (short proxies), then measure each with sandbox_quality.

    python -m experiments.sweep_train --device cuda --steps 2400 --variants base g48u16 lr1e-3

Each variant is a set of extra flags for ``python -m srum_core.tinyumm.train`` (see ``VARIANTS``); all
variants share the seed, the step count and the codec phase's length, so only the named change differs. The
runs go in parallel processes (one per variant: the world's rendering is single-threaded Python, so a machine
with many cores and one GPU trains several at once), then ``experiments.sandbox_quality`` measures each on
validation prompts, and a table of the numbers is printed (and written as JSON).

This is an experiment harness for choosing the shipped configuration: a proxy run is far shorter than the
shipped model's, so only the ranking of the variants is of interest, and it is only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.common import OUT_DIR

ROOT = Path(__file__).resolve().parents[1]

#: Variant name -> extra training flags.
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "g48u16": ["--gen-batch", "48", "--und-batch", "16"],
    "lr1e-3": ["--lr", "1e-3"],
    "g48u16-lr1e-3": ["--gen-batch", "48", "--und-batch", "16", "--lr", "1e-3"],
    "deep": ["--d-model", "128", "--n-layers", "8"],
    "g48u16-deep": ["--gen-batch", "48", "--und-batch", "16", "--d-model", "128", "--n-layers", "8"],
    "shift2": ["--timestep-shift", "2.0"],
    "g40u24": ["--gen-batch", "40", "--und-batch", "24"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["base", "g48u16"], choices=sorted(VARIANTS))
    parser.add_argument("--device", default="cpu", help="torch device for training (default cpu)")
    parser.add_argument("--steps", type=int, default=2400, help="trunk steps per variant (default 2400)")
    parser.add_argument("--minutes", type=float, default=30.0, help="safety stop of each trunk loop")
    parser.add_argument("--codec-steps", type=int, default=1500, help="codec steps per variant (default 1500)")
    parser.add_argument("--pool-size", type=int, default=1500, help="rendered pool entries (default 1500)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per process (default 2)")
    parser.add_argument("--n", type=int, default=16, help="sandbox_quality prompts per category (default 16)")
    parser.add_argument("--guidance", type=float, default=2.0, help="CFG scale for the measurement (default 2.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "sweep")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    started = time.monotonic()
    procs = {}
    for name in args.variants:
        folder = args.out / name
        cmd = [
            sys.executable, "-m", "srum_core.tinyumm.train", "--out", str(folder), "--force",
            "--steps", str(args.steps), "--minutes", str(args.minutes), "--codec-steps", str(args.codec_steps),
            "--pool-size", str(args.pool_size), "--seed", str(args.seed), "--threads", str(args.threads),
            "--device", args.device, *VARIANTS[name],
        ]
        log = (args.out / f"{name}.train.log").open("w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), log)
    train_rc = {}
    for name, (proc, log) in procs.items():
        train_rc[name] = proc.wait()
        log.close()
    train_s = time.monotonic() - started
    print(f"trained {len(procs)} variants in {train_s:.0f} s (return codes {train_rc})", flush=True)

    benches = {}
    for name in args.variants:
        if train_rc[name] != 0:
            continue
        cmd = [
            sys.executable, "-m", "experiments.sandbox_quality", "--weights", str(args.out / name),
            "--n", str(args.n), "--guidance", str(args.guidance), "--seed", str(args.seed),
            "--threads", str(args.threads), "--json", str(args.out / f"{name}.bench.json"),
        ]
        log = (args.out / f"{name}.bench.log").open("w")
        benches[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), log)
    for proc, log in benches.values():
        proc.wait()
        log.close()

    rows = {}
    header = f"{'variant':16s} {'steps':>6s} {'gen_loss':>8s} {'single':>7s} {'overall':>8s} {'judge':>6s} {'object':>7s}  categories"
    print(header)
    for name in args.variants:
        summary_path, bench_path = args.out / name / "train_summary.json", args.out / f"{name}.bench.json"
        if not (summary_path.is_file() and bench_path.is_file()):
            print(f"{name:16s} failed (see {args.out}/{name}.*.log)")
            continue
        summary, bench = json.loads(summary_path.read_text()), json.loads(bench_path.read_text())
        cats = {c: r["referee_accuracy"] for c, r in bench["categories"].items()}
        rows[name] = {
            "flags": VARIANTS[name], "steps": summary["steps"], "train_seconds": summary["train_seconds"],
            "gen_loss": summary["final_metrics"].get("gen_loss"), "categories": cats,
            "overall": bench["referee_accuracy_overall"], "global_judge": bench["global_judge_agreement"],
            "object_judge": bench["object_judge_agreement"],
        }
        r = rows[name]
        print(
            f"{name:16s} {r['steps']:6d} {r['gen_loss']:8.3f} {cats['single']:7.1%} {r['overall']:8.1%} "
            f"{r['global_judge']:6.1%} {r['object_judge']:7.1%}  "
            + " ".join(f"{c}={v:.0%}" for c, v in cats.items() if c != "single")
        )
    (args.out / "sweep.json").write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                                     "train_seconds": train_s, "variants": rows}, indent=2))
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
