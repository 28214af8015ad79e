"""Train several embedded-model variants side by side on one machine, then measure each (recipe search).

    python -m experiments.sweep_sandbox --out /tmp/sweep --minutes 5 --device cuda --workers 3 \\
        --variant base: --variant noise075:--noise-scale 0.75 --variant wide:--d-model 192

Each ``--variant NAME:FLAGS`` is one ``python -m srum_core.tinyumm.train`` run (FLAGS added to the common ones),
all started at once with the same wall-clock budget (``--schedule-by-time``: each run's learning-rate schedule
spans the budget, so variants of different speed all finish their schedule). Then
``python -m experiments.sandbox_model`` measures every variant on the evaluation sets, and a table of the
headline numbers is printed and written to ``OUT/summary.md`` / ``summary.json``. For exploring recipes only:
the shipped weights come from one seeded CPU run of the training script.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep_sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME:EXTRA TRAIN FLAGS")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of every variant")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=3, help="data worker processes per variant")
    parser.add_argument("--per-category", type=int, default=50, help="measured images per category, set and mode")
    parser.add_argument("--common", default="", help="flags for every variant")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    variants = dict(v.split(":", 1) for v in args.variant)
    procs = {}
    t0 = time.monotonic()
    for name, flags in variants.items():
        cmd = [sys.executable, "-m", "srum_core.tinyumm.train", "--out", str(args.out / name), "--force",
               "--device", args.device, "--workers", str(args.workers), "--minutes", str(args.minutes),
               "--steps", "1000000", "--schedule-by-time", *shlex.split(args.common), *shlex.split(flags)]
        log = open(args.out / f"{name}.train.log", "w")  # noqa: SIM115 - closed when the process ends
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
        print(f"started {name}: {' '.join(cmd[3:])}", flush=True)
    for name, (proc, log) in procs.items():
        proc.wait()
        log.close()
        print(f"{name}: training exit {proc.returncode} after {time.monotonic() - t0:.0f}s", flush=True)
    measures = {}
    for name in variants:
        if not (args.out / name / "config.json").is_file():
            continue
        cmd = [sys.executable, "-m", "experiments.sandbox_model", "--weights", str(args.out / name), "--device",
               args.device, "--per-category", str(args.per_category), "--no-speed", "--out",
               str(args.out / name / "measure.json"), "--markdown", str(args.out / name / "measure.md")]
        measures[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(args.out / f"{name}.measure.log", "w"))  # noqa: SIM115
    rows = {}
    for name, proc in measures.items():
        proc.wait()
        path = args.out / name / "measure.json"
        if not path.is_file():
            print(f"{name}: measurement failed (see {name}.measure.log)", flush=True)
            continue
        res = json.loads(path.read_text())
        summary = json.loads((args.out / name / "train_summary.json").read_text())
        row = {"steps": summary["steps"], "final": summary["final_metrics"]}
        for set_name, r in res["sets"].items():
            for mode, m in r["by_mode"].items():
                row[f"{set_name}/{mode}"] = {c: v["referee_accuracy"] for c, v in m.items()}
            j = r["judge_all_images"]
            row[f"{set_name}/judge"] = {k: j[k] for k in ("judge_balanced_accuracy", "judge_auroc",
                                                          "object_balanced_accuracy", "object_auroc")}
        rows[name] = row
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
    lines = []
    for name, row in rows.items():
        lines.append(f"## {name} ({row['steps']} steps)")
        for key, val in row.items():
            if key in ("steps", "final"):
                continue
            lines.append(f"- {key}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in val.items()))
        lines.append("- final: " + ", ".join(f"{k} {v:.3f}" for k, v in row["final"].items() if isinstance(v, float)))
    text = "\n".join(lines)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
