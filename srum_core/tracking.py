"""Optional export of rounds and evaluations to a trackio project (``--track``; off by default).

trackio (``pip install trackio==0.43.0``) is imported only here, when asked for; it writes a local project under
``$TRACKIO_DIR`` (default ``~/.cache/huggingface/trackio``) that ``trackio show`` opens. What is logged:

- a round (:func:`log_round_folder`): every training step's numbers from ``metrics.jsonl`` (total loss, reward
  and constraint terms, lr, grad norm), the round's summary (reward means, judge and referee quality), and its
  after-round sample images;
- an evaluation (:func:`log_evaluation`): per state (step k = round k) the score per category, the change against
  the base with its interval, the self-judge's agreement with the evaluation judge, a table of every number and
  the worst images.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any


def check_trackio() -> Any:
    """The trackio module, or an ImportError that says how to install it."""
    try:
        import trackio
    except ImportError as err:
        raise ImportError("--track needs trackio: pip install trackio==0.43.0 (or drop --track)") from err
    return trackio


def _numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}{k}": float(v)
        for k, v in row.items()
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and k not in ("step", "global_step")
    }


def log_round_folder(run_dir: str | os.PathLike[str], project: str = "srum-workbench") -> str:
    """Log one completed round's run folder; returns the trackio run name."""
    trackio = check_trackio()
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    name = f"round-{run_dir.name}"
    trackio.init(
        project=project,
        name=name,
        config={"backend": config.get("backend"), **config.get("round_config", {})},
        auto_log_cpu=False,
        auto_log_gpu=False,
    )
    try:
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if x]
        step = 0
        for row in lines:
            if row.get("kind") == "round":
                trackio.log(_numbers(row, "round/"), step=step)
            else:
                step += 1
                trackio.log(_numbers(row, "train/"), step=step)
        samples = sorted((run_dir / "samples").glob("after_*.png"))
        if samples:
            trackio.log({"samples/after": [trackio.Image(str(p)) for p in samples[:8]]}, step=step)
    finally:
        trackio.finish()
    return name


def log_evaluation(results: dict[str, Any], out_dir: str | os.PathLike[str], project: str = "srum-workbench") -> str:
    """Log an evaluation's ``results.json`` contents; returns the trackio run name."""
    trackio = check_trackio()
    out_dir = Path(out_dir)
    name = f"evaluate-{out_dir.name}"
    trackio.init(
        project=project,
        name=name,
        config={k: results.get(k) for k in ("backend", "eval_set", "judge", "self_judge", "seeds")},
        auto_log_cpu=False,
        auto_log_gpu=False,
    )
    try:
        rows = []
        for step, (state, entry) in enumerate(results["per_state"].items()):
            metrics = {"eval/overall/score": entry["overall"]["score"]}
            for category, row in entry["per_category"].items():
                metrics[f"eval/{category}/score"] = row["score"]
            delta = (entry.get("vs_base") or {}).get("overall")
            if delta:
                metrics.update(
                    {
                        "eval/overall/delta": delta["delta"],
                        "eval/overall/delta_low": delta["ci95"][0],
                        "eval/overall/delta_high": delta["ci95"][1],
                    }
                )
            for key in ("balanced_accuracy", "auroc", "raw_agreement", "self_pass_rate", "judge_pass_rate"):
                metrics[f"agreement/{key}"] = entry["agreement"][key]
            trackio.log({k: float(v) for k, v in metrics.items() if v is not None}, step=step)
            for category, row in entry["per_category"].items():
                rows.append([state, category, row["score"], row["pass_rate"], row["n"]])
        table = trackio.Table(columns=["state", "category", "score", "pass_rate", "n"], data=rows)
        worst = [
            trackio.Image(str(out_dir / item["image"]), caption=f"{category}: {item['prompt']}"[:120])
            for category, items in list(results["per_state"].values())[-1]["worst"].items()
            for item in items
            if (out_dir / item["image"]).is_file()
        ]
        trackio.log(
            {"eval/table": table, **({"eval/worst": worst[:16]} if worst else {})}, step=len(results["per_state"])
        )
    finally:
        trackio.finish()
    return name
