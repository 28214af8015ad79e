"""The SRUM result on the embedded model: the paper's table and ablations, with paired bootstrap intervals.

    python -m experiments.srum_table --seeds 0 1 2 [--arms ...] [--rounds 1] [--weights DIR]
        [--out docs/results/sandbox_srum.json] [--cache runs/srum_table]

Every arm starts from the same base model, trains on the same self-generated round (the model's own think-mode
images of the same prompts at the same seeds, judged once by the model itself) with the same training seed, and
is measured on the same fixed evaluation items (plain mode): the in-distribution set (``eval`` prompts, never
trained on) and the transfer set (held-out colour–shape pairs). So every comparison is paired.

Arms (:data:`ARMS`): ``base`` (no round); ``sft`` (uniform weights); ``srum`` (the released map, SRUM's
default); ``signed`` (the paper's form); ``binary``; ``global-only``; ``local-only``; ``lam0`` (λ = 0);
``area-grid`` (area-averaged token grid); and the controls ``oracle`` (the referee's verdicts turned into the same
map: the best a judge could do), ``renders`` (the world's perfect drawings of the same prompts, uniform weights)
``gated`` (SRUM's map on the self-accepted images only, g > 0), ``filtered`` (SFT on the images the referee calls
fully right: what a perfect filter gives) and ``contrast`` (SRUM's map with each image's weights rescaled to SFT's
mean weight: the contrast within an image alone, no change of scale between images).

For each arm it reports the accuracy change against ``base`` and against ``sft`` with a paired bootstrap 95%
interval (items resampled within each round seed), per category too, and per round the judge's balanced accuracy
and AUROC against the referee on that round's own images. ``--rounds K`` runs K incremental rounds for the arms in
``--incremental-arms`` (each round generates with the model the previous one trained). Results: the JSON at
``--out`` and a markdown table beside it. Resumable: every measured (arm, seed, round, set) is cached under
``--cache`` and not run again.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ARMS: tuple[str, ...] = ("base", "sft", "srum", "signed", "binary", "global-only", "local-only", "lam0",
                         "area-grid", "oracle", "renders", "gated", "filtered", "contrast")
SETS: dict[str, str] = {"eval": "eval", "transfer": "transfer"}


@dataclass(frozen=True)
class Arm:
    """How one arm trains: the reward map mode and token grid, λ, whose judgement builds the map (``self`` or
    the ``referee``), which images (``self``: the round's own, ``renders``: the world's drawings), a gate."""

    name: str
    trains: bool
    mode: str = "released"
    grid: str = "bilinear"
    lam: float = 0.5
    judge: str = "self"
    data: str = "self"
    gate: float | None = None
    #: ``referee-pass``: keep only the images the referee calls fully right (a perfect filter).
    keep: str = "all"
    #: Rescale each image's weights to SFT's mean weight (SRUM's contrast within an image, no change of scale).
    contrast_only: bool = False


def arm_spec(name: str, reward_mode: str, grid: str, lam: float) -> Arm:
    """The arm ``name`` relative to the round recipe (its map ``reward_mode``, ``grid`` and ``lam``)."""
    base = Arm(name=name, trains=True, mode=reward_mode, grid=grid, lam=lam)
    table = {
        "base": Arm(name="base", trains=False),
        "sft": replace(base, mode="sft"),
        "srum": base,
        "signed": replace(base, mode="signed"),
        "binary": replace(base, mode="binary"),
        "global-only": replace(base, mode="global-only"),
        "local-only": replace(base, mode="local-only"),
        "lam0": replace(base, lam=0.0),
        "area-grid": replace(base, grid="area"),
        "oracle": replace(base, judge="referee"),
        "renders": replace(base, mode="sft", data="renders"),
        "gated": replace(base, gate=0.0),
        "filtered": replace(base, mode="sft", keep="referee-pass"),
        "contrast": replace(base, contrast_only=True),
    }
    if name not in table:
        raise ValueError(f"unknown arm {name!r}; choose from {', '.join(ARMS)}")
    return table[name]


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def oracle_report(report: Any, passed: bool, detections: Sequence[dict], spec: Any, min_iou: float = 0.3) -> Any:
    """``report`` with the referee's verdicts in place of the model's: ``g = ±1`` by whether the image passes,
    each region ``±1`` by whether the referee's detection under it (best IoU ≥ ``min_iou``) is an object the prompt
    asks for (no detection under it: −1). The same regions, so the same map geometry as the model's own."""
    from srum_core.tinyumm.data import object_wanted

    g = replace(report.global_judgement, score=1.0 if passed else -1.0, raw_score=1.0 if passed else -1.0,
                parse_status="ok", reason="referee")
    regions = []
    for r in report.regions:
        best, best_iou = None, 0.0
        for d in detections:
            iou = _iou(r.region.box, d["box"])
            if iou > best_iou:
                best, best_iou = d, iou
        wanted = best is not None and best_iou >= min_iou and object_wanted(SimpleNamespace(**best), spec)
        score = 1.0 if wanted else -1.0
        regions.append(replace(r, score=score, raw_score=score, parse_status="ok", reason="referee"))
    return replace(report, global_judgement=g, regions=tuple(regions))


def contrast_only(weights: np.ndarray, lam: float) -> np.ndarray:
    """Token weights ``w'`` whose per-token loss weights ``w' + λ`` keep each image's contrast (their ratios within
    the image) but have SFT's mean ``1 + λ`` in every image: ``w' = (w + λ)·(1 + λ)/mean(w + λ) − λ``. An image
    whose weights are all zero (no loss at all) gets SFT's uniform weight."""
    total = np.asarray(weights, dtype=np.float64) + lam
    mean = total.mean(axis=1, keepdims=True)
    safe = np.where(mean > 0, mean, 1.0)
    scaled = np.where(mean > 0, total * (1.0 + lam) / safe, 1.0 + lam)
    return (scaled - lam).astype(np.float32)


def arm_training_set(arm: Arm, samples: Sequence[Any], reports: Sequence[Any], token_size: int,
                     oracle: Sequence[Any] | None = None, renders: Sequence[Any] | None = None,
                     passed: Sequence[bool] | None = None):
    """``(samples, (B, N) weights)`` an arm trains on, from one round's images and judgements (``passed``: the
    referee's verdicts, for the ``referee-pass`` filter)."""
    from srum_core.config import RewardConfig
    from srum_core.rounds import select_training_set
    from srum_core.scoring import training_maps

    reward = RewardConfig(mode=arm.mode, grid=arm.grid)
    used = oracle if arm.judge == "referee" else reports
    if used is None:
        raise ValueError(f"arm {arm.name!r} needs the referee's reports")
    maps = training_maps(used, reward, token_size)
    chosen = select_training_set(samples, maps, used, arm.gate)
    if arm.data == "renders":
        if renders is None:
            raise ValueError("the renders arm needs the world's drawings of the round's prompts")
        kept = [renders[i] for i in chosen.kept]
        return kept, np.ones((len(kept), chosen.weights.shape[1]), dtype=np.float32)
    out_samples, weights = list(chosen.samples), chosen.weights
    if arm.keep == "referee-pass":
        if passed is None:
            raise ValueError(f"arm {arm.name!r} needs the referee's verdicts on the round's images")
        keep = [j for j, i in enumerate(chosen.kept) if passed[i]]
        out_samples, weights = [out_samples[j] for j in keep], weights[keep]
    if arm.contrast_only:
        weights = contrast_only(weights, arm.lam)
    return out_samples, weights


# ---------------------------------------------------------------------------------------------------------------
# Measuring


def evaluate_items(backend: Any, items: Sequence[tuple], steps: int, guidance: float, batch: int = 32) -> list[bool]:
    """Referee pass/fail of each ``(PromptItem, seed)`` generated in plain mode, in order."""
    from srum_core.config import GenerationConfig
    from srum_core.evaluation import referee_passed

    referee = backend.referee()
    config = GenerationConfig(steps=steps, guidance=guidance, mode="plain")
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        samples = backend.generate([it.text for it, _ in chunk], [s for _, s in chunk], config)
        out += [bool(referee_passed(referee, s.image, it)) for (it, _), s in zip(chunk, samples)]
    return out


def judge_quality(reports: Sequence[Any], verdicts: Sequence[bool]) -> dict[str, float | None]:
    """The self-judge against the referee on a round's own images: balanced accuracy and AUROC of ``g``."""
    from srum_core.stats import auroc, balanced_accuracy

    pairs = [(v, r.global_judgement.score) for v, r in zip(verdicts, reports) if r.trainable]
    truth = [v for v, _ in pairs]
    scores = [g for _, g in pairs]
    return {"n": len(pairs), "referee_accuracy": float(np.mean(truth)) if truth else None,
            "balanced_accuracy": balanced_accuracy(truth, [g > 0 for g in scores]), "auroc": auroc(truth, scores)}


def delta_table(arm: Sequence[bool], reference: Sequence[bool], categories: Sequence[str], seeds: Sequence[int],
                n_resamples: int, seed: int = 0) -> dict[str, Any]:
    """Paired change of ``arm`` over ``reference`` in percentage points, overall and per category."""
    from srum_core.stats import paired_bootstrap

    a = np.asarray(reference, dtype=float) * 100
    b = np.asarray(arm, dtype=float) * 100
    overall = paired_bootstrap(a, b, clusters=seeds, n_resamples=n_resamples, seed=seed)
    out = {"delta": overall.delta, "ci95": [overall.low, overall.high], "per_category": {}}
    cats = np.asarray(categories)
    for c in sorted(set(categories)):
        sel = cats == c
        d = paired_bootstrap(a[sel], b[sel], clusters=np.asarray(seeds)[sel], n_resamples=n_resamples, seed=seed)
        out["per_category"][c] = {"delta": d.delta, "ci95": [d.low, d.high]}
    return out


# ---------------------------------------------------------------------------------------------------------------
# The runner


class Cache:
    """One JSON file per measured thing under ``root``; present files are results already measured."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any:
        path = self.root / f"{key}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, key: str, value: Any) -> None:
        path = self.root / f"{key}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)


def render_samples(backend: Any, items: Sequence[Any], seeds: Sequence[int]) -> list[Any]:
    """The world's clean drawings of the round's prompts (one layout per image seed)."""
    from srum_core.types import Sample
    from srum_core.world.render import render_spec
    from srum_core.world.spec import PromptSpec

    out = []
    for item, seed in zip(items, seeds):
        image, _ = render_spec(PromptSpec.from_dict(item.spec), np.random.default_rng(seed))
        out.append(Sample(prompt=item.text, seed=seed, image=image))
    return out


def run_round_data(backend: Any, config: Any, round_seed: int, log) -> dict[str, Any]:
    """Generate, propose, judge one round with the backend's current weights, as :func:`run_round` does; plus the
    referee's verdicts and the oracle reports."""
    from srum_core.distributed import ProcessInfo
    from srum_core.evaluation import image_seed
    from srum_core.prompt_sets import sample_prompts
    from srum_core.rounds import generate_samples, judge_samples, propose_regions, resolve_generation_mode
    from srum_core.world.spec import PromptSpec

    info = ProcessInfo()
    t0 = time.monotonic()
    prompts = sample_prompts(backend, config.prompts, config.categories, config.n_prompts, round_seed)
    items = [item for item in prompts for _ in range(config.images_per_prompt)]
    seeds = [image_seed(round_seed, i) for i in range(len(items))]
    generation = resolve_generation_mode(backend, config.generation)
    samples = generate_samples(backend, items, seeds, generation, info)
    regions = propose_regions(backend, samples, config.judge, info)
    reports = judge_samples(backend, samples, regions, config.judge, info)
    referee = backend.referee()
    verdicts = [referee(s.image, it) for s, it in zip(samples, items)]
    passed = [bool(v.passed) for v in verdicts]
    oracle = [oracle_report(r, p, v.details.get("detected", []), PromptSpec.from_dict(it.spec))
              for r, p, v, it in zip(reports, passed, verdicts, items)]
    log(f"    round images: {len(samples)} in {time.monotonic() - t0:.0f}s; referee accepts "
        f"{np.mean(passed):.1%}; judge {judge_quality(reports, passed)}")
    return {"items": items, "seeds": seeds, "samples": samples, "reports": reports, "passed": passed,
            "oracle": oracle}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.srum_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="round seeds")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--rounds", type=int, default=1, help="incremental rounds for --incremental-arms")
    parser.add_argument("--incremental-arms", nargs="+", default=["srum", "sft"], choices=ARMS[1:])
    parser.add_argument("--weights", default=None, help="base model (default: the shipped assets/tiny-umm)")
    parser.add_argument("--sets", nargs="+", default=["eval", "transfer"], choices=sorted(SETS))
    parser.add_argument("--per-category", type=int, default=None, help="cap evaluation images per category")
    parser.add_argument("--transfer-per-category", type=int, default=50,
                        help="cap transfer-set images per category (default 50: the plain model passes ~1%% there)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, default=Path("docs/results/sandbox_srum.json"))
    parser.add_argument("--cache", type=Path, default=Path("runs/srum_table"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="sandbox-srum",
                        help="the round recipe (srum_core.config.PRESETS; the Train tab's default for the sandbox)")
    for name, kind in (("n-prompts", int), ("images-per-prompt", int), ("steps", int), ("lr", float),
                       ("batch-size", int), ("lam", float), ("warmup-steps", int), ("lora-rank", int),
                       ("timestep-shift", float)):
        parser.add_argument(f"--{name}", type=kind, default=None, help="override the round recipe's value")
    parser.add_argument("--gen-mode", choices=("plain", "think"), default=None,
                        help="mode of the round's own images (default: think, as SRUM's released pipeline)")
    parser.add_argument("--full-finetune", action="store_true", default=None, help="override: full fine-tuning")
    parser.add_argument("--lora", dest="full_finetune", action="store_false", help="override: LoRA")
    args = parser.parse_args(argv)

    import torch

    from srum_core.adapters import adapter_state, attach_adapter, init_adapter, load_adapter_state
    from srum_core.backends.sandbox import load_sandbox
    from srum_core.params import round_config
    from srum_core.training import train_on_samples

    from .sandbox_model import set_items

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    log = print
    config = round_config({}, preset=args.preset, eval_split=None)
    training = config.training
    for field_name in ("steps", "lr", "batch_size", "lam", "warmup_steps", "lora_rank", "full_finetune",
                       "timestep_shift"):
        value = getattr(args, field_name)
        if value is not None:
            training = replace(training, **{field_name: value})
    changes = {k: getattr(args, k) for k in ("n_prompts", "images_per_prompt") if getattr(args, k) is not None}
    config = replace(config, training=training, **changes)
    if args.gen_mode is not None:
        config = replace(config, generation=replace(config.generation, mode=args.gen_mode))
    backend = load_sandbox(args.weights, device="cpu")
    gen = config.generation
    cache = Cache(args.cache)
    recipe = {"round": config.to_dict(), "weights": str(args.weights or "assets/tiny-umm"),
              "sets": {name: SETS[name] for name in args.sets}, "per_category": args.per_category,
              "transfer_per_category": args.transfer_per_category}
    previous = cache.get("recipe")
    if previous is not None and previous != json.loads(json.dumps(recipe)):
        raise SystemExit(f"error: {args.cache} holds results of another recipe; use a new --cache folder")
    cache.put("recipe", recipe)
    caps = {"eval": args.per_category, "transfer": args.transfer_per_category}
    eval_items = {name: set_items(backend, SETS[name], caps[name]) for name in args.sets}

    def measure(key: str, set_name: str) -> list[bool]:
        hit = cache.get(f"{key}_{set_name}")
        if hit is None:
            t0 = time.monotonic()
            passes = evaluate_items(backend, eval_items[set_name], gen.steps, gen.guidance)
            cache.put(f"{key}_{set_name}", passes)
            log(f"    {key} on {set_name}: {np.mean(passes):.1%} ({len(passes)} images, {time.monotonic() - t0:.0f}s)")
            return passes
        return hit

    arms = [arm_spec(a, config.reward.mode, config.reward.grid, training.lam) for a in args.arms]
    if "base" not in args.arms:
        arms.insert(0, arm_spec("base", config.reward.mode, config.reward.grid, training.lam))
    attach_adapter(backend, training)
    init_adapter(backend, 0)
    base_state = adapter_state(backend)
    results: dict[str, dict] = {}  # (arm, seed, round) -> per set passes
    judge: dict[str, list] = {}
    log(f"base model: {recipe['weights']}")
    results["base"] = {(-1, 0): {set_name: measure("base", set_name) for set_name in args.sets}}
    trained_arms = [a for a in arms if a.trains]

    def chain_of(arm: Arm) -> list[int]:
        return [1] + (list(range(2, args.rounds + 1)) if arm.name in args.incremental_arms else [])

    def cached(arm: Arm, seed: int, k: int) -> bool:
        return all(cache.get(f"{arm.name}_s{seed}_r{k}_{s}") is not None for s in args.sets)

    for seed in args.seeds:
        log(f"round seed {seed}")
        todo = [a for a in trained_arms if not all(cached(a, seed, k) for k in chain_of(a))]
        round1 = renders1 = None
        if todo or cache.get(f"judge_s{seed}_r1") is None:
            load_adapter_state(backend, base_state)
            round1 = run_round_data(backend, replace(config, seed=seed), seed, log)
            cache.put(f"judge_s{seed}_r1", judge_quality(round1["reports"], round1["passed"]))
            renders1 = render_samples(backend, round1["items"], round1["seeds"])
        judge.setdefault("1", []).append(cache.get(f"judge_s{seed}_r1"))
        for arm in trained_arms:
            if arm not in todo:
                for k in chain_of(arm):
                    key = f"{arm.name}_s{seed}_r{k}"
                    results.setdefault(arm.name, {})[(seed, k)] = {s: cache.get(f"{key}_{s}") for s in args.sets}
                continue
            # A chain with anything left to measure is retrained from the base (training is cheap; measured
            # evaluations are read back from the cache).
            data, renders, state = round1, renders1, base_state
            for k in chain_of(arm):
                key = f"{arm.name}_s{seed}_r{k}"
                load_adapter_state(backend, state)
                if k > 1:
                    data = run_round_data(backend, replace(config, seed=seed * 100 + k), seed * 100 + k, log)
                    cache.put(f"judge_{arm.name}_s{seed}_r{k}", judge_quality(data["reports"], data["passed"]))
                    renders = render_samples(backend, data["items"], data["seeds"])
                samples, weights = arm_training_set(arm, data["samples"], data["reports"], backend.token_size,
                                                    data["oracle"], renders, data["passed"])
                t0 = time.monotonic()
                trained = train_on_samples(backend, samples, weights,
                                           replace(training, lam=arm.lam, seed=seed * 100 + k))
                log(f"  {arm.name} round {k}: trained on {len(samples)} images, {trained.steps} steps in "
                    f"{time.monotonic() - t0:.0f}s")
                state = adapter_state(backend)
                results.setdefault(arm.name, {})[(seed, k)] = {s: measure(key, s) for s in args.sets}
    for arm_name in args.incremental_arms:
        for k in range(2, args.rounds + 1):
            judge.setdefault(f"{k}:{arm_name}", [cache.get(f"judge_{arm_name}_s{s}_r{k}") for s in args.seeds])

    summary = summarise(results, eval_items, args, recipe, judge)
    summary["wall_seconds_this_run"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    table = markdown(summary)
    args.out.with_suffix(".md").write_text(table + "\n")
    log(table)
    return 0


def summarise(results: dict, eval_items: dict, args, recipe: dict, judge: dict) -> dict[str, Any]:
    """The JSON document: per arm (last round of its chain), its change against base and against sft."""
    out: dict[str, Any] = {"arms": {}, "config": {**recipe, "seeds": list(args.seeds), "rounds": args.rounds,
                                                  "bootstrap_resamples": args.bootstrap},
                           "judge": {}}
    for key, rows in judge.items():
        rows = [r for r in rows if r]
        if rows:
            out["judge"][f"round {key}"] = {
                m: float(np.mean([r[m] for r in rows if r[m] is not None])) if any(r[m] is not None for r in rows)
                else None for m in ("balanced_accuracy", "auroc", "referee_accuracy")}
    base = results["base"][(-1, 0)]
    for name, runs in results.items():
        entry: dict[str, Any] = {}
        rounds = sorted({k for (_, k) in runs}) if name != "base" else [0]
        for k in rounds:
            per_set = {}
            for set_name, items in eval_items.items():
                cats = [it.category for it, _ in items]
                seeds = [s for s in args.seeds if (s, k) in runs] if name != "base" else args.seeds
                if not seeds:
                    continue
                arm_pass = [p for s in seeds for p in (runs[(s, k)][set_name] if name != "base" else base[set_name])]
                base_pass = [p for _ in seeds for p in base[set_name]]
                clusters = [s for s in seeds for _ in items]
                all_cats = cats * len(seeds)
                row = {"accuracy": float(np.mean(arm_pass)) * 100, "n_images": len(arm_pass), "seeds": seeds}
                vs_base = delta_table(arm_pass, base_pass, all_cats, clusters, args.bootstrap)
                row.update(delta_vs_base=vs_base["delta"], ci95_vs_base=vs_base["ci95"])
                sft_runs = results.get("sft", {})
                sft_k = 1 if k == 0 else (k if all((s, k) in sft_runs for s in seeds) else 1)
                if name != "sft" and all((s, sft_k) in sft_runs for s in seeds):
                    sft_pass = [p for s in seeds for p in sft_runs[(s, sft_k)][set_name]]
                    vs_sft = delta_table(arm_pass, sft_pass, all_cats, clusters, args.bootstrap)
                    row.update(delta_vs_sft=vs_sft["delta"], ci95_vs_sft=vs_sft["ci95"])
                else:
                    vs_sft = None
                row["per_category"] = {
                    c: {"accuracy": float(np.mean([p for p, cc in zip(arm_pass, all_cats) if cc == c])) * 100,
                        "delta_vs_base": vs_base["per_category"][c]["delta"],
                        "ci95_vs_base": vs_base["per_category"][c]["ci95"],
                        **({"delta_vs_sft": vs_sft["per_category"][c]["delta"],
                            "ci95_vs_sft": vs_sft["per_category"][c]["ci95"]} if vs_sft else {})}
                    for c in sorted(set(cats))
                }
                per_set[set_name] = row
            entry[f"round {k}"] = per_set
        # The headline is one round (every arm has it); incremental arms keep rounds 2..K in by_round.
        first = entry[f"round {min(rounds)}"]
        first_set = "eval" if "eval" in first else next(iter(first))
        out["arms"][name] = {**{k: v for k, v in first[first_set].items()},
                             "transfer": first.get("transfer"), "by_round": entry}
    return out


def markdown(summary: dict) -> str:
    """The headline table: accuracy and paired changes (95% intervals) per arm, in-distribution and transfer."""

    def ci(row: dict | None, key: str) -> str:
        if not row or f"delta_{key}" not in row:
            return "–"
        lo, hi = row[f"ci95_{key}"]
        return f"{row[f'delta_{key}']:+.1f} [{lo:+.1f}, {hi:+.1f}]"

    lines = ["| arm | in-dist accuracy | Δ vs base [95% CI] | Δ vs sft [95% CI] | transfer accuracy | transfer Δ vs base |",
             "|---|---|---|---|---|---|"]
    for name, row in summary["arms"].items():
        tr = row.get("transfer")
        lines.append(f"| {name} | {row['accuracy']:.1f}% | {ci(row, 'vs_base')} | {ci(row, 'vs_sft')} | "
                     f"{tr['accuracy']:.1f}% | {ci(tr, 'vs_base')} |" if tr else
                     f"| {name} | {row['accuracy']:.1f}% | {ci(row, 'vs_base')} | {ci(row, 'vs_sft')} | – | – |")
    n = summary["arms"].get("base", {}).get("n_images")
    seeds = summary["config"]["seeds"]
    lines += ["", f"Paired over the same evaluation items: {n} images per arm (the same items at each of the round seeds {seeds}); "
              f"intervals from {summary['config']['bootstrap_resamples']} bootstrap resamples within each seed."]
    chains = {name: row["by_round"] for name, row in summary["arms"].items() if len(row.get("by_round", {})) > 1}
    if chains:
        lines += ["", "Incremental rounds (each round generates with the model the previous round trained):", "",
                  "| arm | round | in-dist accuracy | Δ vs base [95% CI] | Δ vs sft at the same round [95% CI] |",
                  "|---|---|---|---|---|"]
        for name, by_round in chains.items():
            for k, per_set in sorted(by_round.items(), key=lambda kv: int(kv[0].split()[1])):
                row = per_set.get("eval") or next(iter(per_set.values()))
                lines.append(f"| {name} | {k.split()[1]} | {row['accuracy']:.1f}% | {ci(row, 'vs_base')} | "
                             f"{ci(row, 'vs_sft')} |")
    if summary.get("judge"):
        lines += ["", "| round | judge balanced accuracy | judge AUROC | referee accuracy of the round's images |",
                  "|---|---|---|---|"]
        for k, j in summary["judge"].items():
            def f(v):
                return "–" if v is None else f"{v:.3f}"
            lines.append(f"| {k} | {f(j['balanced_accuracy'])} | {f(j['auroc'])} | {f(j['referee_accuracy'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ARMS", "Arm", "arm_spec", "arm_training_set", "asdict", "contrast_only", "delta_table", "oracle_report"]
