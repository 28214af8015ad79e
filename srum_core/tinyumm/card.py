"""The model card (README.md) of a TinyUMM weights folder: architecture, data, caption noise, training, results."""

from __future__ import annotations

import json
from pathlib import Path


def write_model_card(out: Path, config, summary: dict, measured: str | None = None) -> None:
    """Write ``out/README.md`` from the run's config and summary (and measured results, when given)."""
    lines = ["# tiny-umm v2", "", "```json", json.dumps(summary.get("final_metrics", {}), indent=1), "```"]
    if measured:
        lines += ["", measured]
    (Path(out) / "README.md").write_text("\n".join(lines) + "\n")
