"""Share a round on the Hugging Face Hub: the run folder plus a generated model card.

:func:`prepare_upload` builds, in a local folder, exactly what would be uploaded (adapter weights and config,
the round's config, metrics, evaluation, log, records, sample and generated images, and ``README.md`` — the model
card: how the round was made and what was measured before and after). :func:`push_run` uploads that folder with
``huggingface_hub`` and the user's own token; with ``dry_run_dir`` it stops after preparing, touching no network.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adapters import read_adapter_config
from .runs import read_run

logger = logging.getLogger(__name__)

MAX_PROMPTS_IN_CARD = 20


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _evaluation_table(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation or not evaluation.get("after"):
        return ["No evaluation was run with this round (`eval_split` was off)."]
    before, after = evaluation.get("before") or {}, evaluation["after"]
    lines = [
        f"Split `{after['split']}`, {after['n_prompts']} prompt(s) per category × seeds {after['seeds']}. "
        f"Referee: `{after.get('referee')}` (independent of the model; never used for training). "
        f"Judge: {after['judge']}.",
        "",
        "| category | referee accuracy before | after | self-judge pass before | after | judge–referee agreement before"
        " | after | images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cats = ["overall", *sorted(after.get("per_category", {}))]
    for cat in cats:
        a = after["overall"] if cat == "overall" else after["per_category"][cat]
        b = (before.get("overall") if cat == "overall" else before.get("per_category", {}).get(cat)) or {}
        lines.append(
            f"| {cat} | {_pct(b.get('referee_accuracy'))} | {_pct(a.get('referee_accuracy'))} | "
            f"{_pct(b.get('judge_pass_rate'))} | {_pct(a.get('judge_pass_rate'))} | {_pct(b.get('agreement'))} | "
            f"{_pct(a.get('agreement'))} | {a.get('n')} |"
        )
    return lines


def build_model_card(run_dir: str | os.PathLike[str], repo_id: str) -> str:
    """The ``README.md`` of an uploaded round: front matter, how it was made, what was measured, how to load it."""
    info = read_run(run_dir)
    cfg = info.config
    training, reward, judge, generation = cfg["training"], cfg["reward"], cfg["judge"], cfg["generation"]
    adapter = read_adapter_config(info.adapter_dir)
    meta = info.meta or {}
    lora = adapter.get("srum_kind") == "lora"
    summary = info.summary
    # Each prompt once, in order (a round may draw each prompt several times: images_per_prompt).
    prompts = list(dict.fromkeys(row["prompt"] for row in info.generation_rows()))

    front = ["---", "tags:", "- srum", "- self-rewarding", "- text-to-image", "- unified-multimodal-model"]
    if lora:
        front += ["- lora", "library_name: peft"]
    front += ["---", ""]
    lines = [
        *front,
        f"# {repo_id}",
        "",
        f"Round {info.round_index} of SRUM self-rewarding post-training (arXiv 2510.12784) on the `{info.backend}` "
        "backend, made with SRUM Workbench. The model generated its own images, judged them with its own "
        "understanding path (a global layout score and one score per region), turned the judgements into a dense "
        "reward map, and trained on its own samples with `L = mean(w·e) + λ·mean(e)`.",
        "",
        "## How it was made",
        "",
        "| setting | value |",
        "|---|---|",
        f"| backend | `{info.backend}` |",
        f"| round | {info.round_index}"
        + (f" (resumed from `{Path(str(info.resumed_from)).name}`)" if info.resumed_from else " (from the base model)")
        + " |",
        f"| prompts | `{cfg['prompts']}`, categories {cfg.get('categories') or 'all'}, {cfg['n_prompts']} prompts × "
        f"{cfg.get('images_per_prompt', 1)} image(s) |",
        f"| seed | {cfg['seed']} |",
        f"| generation | {generation['steps']} steps, guidance {generation['guidance']} |",
        f"| judge | self-judge, region view `{judge['region_view']}`, up to {judge['max_regions']} regions from "
        f"`{meta.get('box_source')}` |",
        f"| reward map | mode `{reward['mode']}`, token grid `{reward['grid']}` |",
        f"| λ (constraint weight) | {training['lam']} |",
        f"| training | {'LoRA rank ' + str(training['lora_rank']) if lora else 'full fine-tuning'}, {training['steps']} "
        f"steps, lr {training['lr']}, batch {training['batch_size']}, warm-up {training['warmup_steps']}, AdamW "
        f"({training['beta1']}, {training['beta2']}, eps {training['eps']}), grad clip {training['grad_clip']}, "
        f"timestep shift {training.get('timestep_shift') or 'backend default'}, prompt dropout {training['cond_dropout']} |",
        "",
        "Global judge question template:",
        "",
        f"> {judge['global_template']}",
        "",
        "## Rewards this round",
        "",
        f"- images generated: {_number(summary.get('n_samples'))}; "
        f"trained on: {_number(summary.get('n_trained', summary.get('n_trainable')))}; "
        f"left out because the global judgement could not be read: {_number(summary.get('n_excluded_global_unusable'))}"
        + (
            f"; left out by the gate (global score ≤ {cfg.get('gate')}): {_number(summary.get('n_gated_out'))}"
            if cfg.get("gate") is not None
            else ""
        ),
        f"- mean global score g: {_number(summary.get('global_reward_mean'))}; mean region score: "
        f"{_number(summary.get('region_reward_mean'))} over {_number(summary.get('n_regions'))} regions "
        f"({_number(summary.get('n_regions_unusable'))} unreadable); mean token weight: "
        f"{_number(summary.get('token_weight_mean'))}",
        f"- final loss {_number(summary.get('final_loss'))} (reward term {_number(summary.get('final_reward_term'))}, "
        f"constraint term {_number(summary.get('final_constraint_term'))})",
        "",
        "## Measured before and after",
        "",
        *_evaluation_table(info.eval),
        "",
        "These numbers come from this run's `eval.json`; small evaluation sets move by several points between "
        "seeds — compare against an SFT round on the same images (map mode `sft`) before crediting the reward.",
        "",
        "## Prompts",
        "",
        *[f"- {p}" for p in prompts[:MAX_PROMPTS_IN_CARD]],
        *(
            [f"- … and {len(prompts) - MAX_PROMPTS_IN_CARD} more (see `images/generation.jsonl`)"]
            if len(prompts) > MAX_PROMPTS_IN_CARD
            else []
        ),
        "",
        "## Use",
        "",
        "```python",
        "from huggingface_hub import snapshot_download",
        "from srum_core.runs import load_run",
        "",
        f'run_dir = snapshot_download("{repo_id}")',
        f"load_run(run_dir, backend)  # backend: the `{info.backend}` base model, loaded as usual",
        "```",
        "",
        "## Files",
        "",
        "- `adapter/`: the weights after the round (safetensors) and `adapter_config.json`",
        "- `config.json`: the full round configuration; `metrics.jsonl`: per-step and per-round metrics",
        "- `eval.json`: evaluation before/after; `round.log`: the round's log",
        "- `records.jsonl` / `training_records.jsonl`: SRUM scoring and training records",
        "- `samples/`: before/after images at fixed prompts and seeds; `images/`: the round's own generations",
        "",
    ]
    return "\n".join(lines)


def prepare_upload(run_dir: str | os.PathLike[str], repo_id: str, folder: str | os.PathLike[str]) -> list[str]:
    """Write what :func:`push_run` uploads into ``folder`` (must not exist); returns the relative file list."""
    run_dir, folder = Path(run_dir), Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; give a new folder for the upload preview")
    card = build_model_card(run_dir, repo_id)
    folder.mkdir(parents=True)
    for source in read_run(run_dir).contents():
        if source.is_dir():
            shutil.copytree(source, folder / source.name)
        else:
            shutil.copy2(source, folder / source.name)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class PushResult:
    """Where the round went (``url`` None for a dry run) and the files it holds."""

    repo_id: str
    folder: Path
    files: tuple[str, ...]
    url: str | None


def push_run(
    run_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    dry_run_dir: str | os.PathLike[str] | None = None,
) -> PushResult:
    """Upload a completed run folder and its model card to the model repo ``repo_id`` (created if missing).

    ``token`` None uses the token of ``hf auth login`` / ``HF_TOKEN``. With ``dry_run_dir`` the upload folder is
    written there and nothing is sent.
    """
    if "/" not in repo_id:
        raise ValueError(f"repo_id={repo_id!r}: write it as 'user-or-org/name'")
    if dry_run_dir is not None:
        files = prepare_upload(run_dir, repo_id, dry_run_dir)
        return PushResult(repo_id=repo_id, folder=Path(dry_run_dir), files=tuple(files), url=None)

    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: run `hf auth login` or set HF_TOKEN (or pass --token)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "upload"
        files = prepare_upload(run_dir, repo_id, folder)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message=f"SRUM round {read_run(run_dir).round_index} from SRUM Workbench",
        )
    logger.info("pushed %d files of %s to %s", len(files), run_dir, repo_id)
    return PushResult(
        repo_id=repo_id, folder=Path(run_dir), files=tuple(files), url=str(getattr(commit, "commit_url", commit))
    )
