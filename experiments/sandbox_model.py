"""Measure the embedded model against the world's referee: what it draws (plain and think mode), how well it judges.

    python -m experiments.sandbox_model [--weights assets/tiny-umm] [--sets eval transfer] [--per-category 100]
        [--modes plain think] [--steps 20] [--guidance 3.0] [--out results.json] [--markdown results.md]

For each evaluation set (``eval``: the in-distribution prompts, never trained on; ``transfer``: held-out
colour–shape pairs) it generates the same (prompt, seed) items in every mode and reports, per category:

- the referee's pass rate (the measure; non-learned, never used for training or judging);
- the learned global judge against the referee on all of the model's own images: balanced accuracy and AUROC
  of ``g`` (raw agreement flatters a judge at a low base rate);
- the learned per-object judge on the referee's own detections in those images (the region score against "is
  this detection an object the prompt asks for?"): balanced accuracy and AUROC;
- speed: loading the weights, and generating + scoring 16 images (plain mode; global judgement and every
  region from the default box source) on this machine's threads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: The fixed evaluation sets: a world split, distinct prompts per category, image seeds per prompt.
EVAL_SETS: dict[str, dict] = {
    "eval": {"split": "eval", "n_prompts": 25, "seeds": (0, 1, 2, 3)},
    "transfer": {"split": "val", "n_prompts": 25, "seeds": (0, 1, 2, 3)},
}


def set_items(backend, name: str, per_category: int | None = None) -> list[tuple]:
    """``(PromptItem, image seed)`` pairs of an evaluation set, category by category (``per_category`` caps them)."""
    from srum_core.evaluation import eval_prompts, image_seed

    spec = EVAL_SETS[name]
    prompts = eval_prompts(backend, spec["split"], None, spec["n_prompts"], 0)
    items = [(item, image_seed(seed, i)) for seed in spec["seeds"] for i, item in enumerate(prompts)]
    if per_category is not None:
        kept, count = [], {}
        for item, seed in items:
            if count.get(item.category, 0) < per_category:
                kept.append((item, seed))
                count[item.category] = count.get(item.category, 0) + 1
        items = kept
    return items


def measure(backend, items, modes, steps: int, guidance: float, batch: int = 32, log=print) -> dict:
    """Generate every item in every mode; referee + global judge + per-object judge on each image."""
    from srum_core.config import GenerationConfig, JudgeConfig
    from srum_core.stats import auroc, balanced_accuracy
    from srum_core.tinyumm.data import object_wanted
    from srum_core.types import Region
    from srum_core.world.referee import OUTCOMES, detect, outcome, verify
    from srum_core.world.spec import PromptSpec

    judge = JudgeConfig()
    rows = []
    for mode in modes:
        config = GenerationConfig(steps=steps, guidance=guidance, mode=mode)
        t0 = time.monotonic()
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            samples = backend.generate([it.text for it, _ in chunk], [s for _, s in chunk], config)
            for (item, seed), sample in zip(chunk, samples):
                spec = PromptSpec.from_dict(item.spec)
                verdict = verify(sample.image, spec)
                g = backend.judge_global(sample.image, item.text, judge).score
                dets = detect(sample.image)
                regions = [Region(box=d.box, source="referee") for d in dets]
                judged = backend.judge_regions(sample.image, item.text, regions, judge) if regions else []
                objects = [{"wanted": object_wanted(d, spec), "score": j.score} for d, j in zip(dets, judged)]
                rows.append({"mode": mode, "category": item.category, "prompt": item.text, "seed": seed,
                             "referee": bool(verdict.passed), "outcome": outcome(verdict, spec), "g": g,
                             "objects": objects,
                             "plan": sample.settings.get("plan")})
        log(f"  {mode}: {len(items)} images in {time.monotonic() - t0:.0f}s")

    def summary(sel: list[dict]) -> dict:
        truth = [r["referee"] for r in sel]
        scores = [r["g"] for r in sel]
        objs = [o for r in sel for o in r["objects"] if o["score"] is not None]
        return {
            "n": len(sel),
            "referee_accuracy": float(np.mean(truth)) if sel else None,
            "judge_balanced_accuracy": balanced_accuracy(truth, [s > 0 for s in scores]),
            "judge_auroc": auroc(truth, scores),
            "object_n": len(objs),
            "object_balanced_accuracy": balanced_accuracy([o["wanted"] for o in objs], [o["score"] > 0 for o in objs]),
            "object_auroc": auroc([o["wanted"] for o in objs], [o["score"] for o in objs]),
            # The image mix: all right / partly wrong / all wrong (srum_core.world.referee.outcome).
            "mix": {k: float(np.mean([r["outcome"] == k for r in sel])) if sel else None for k in OUTCOMES},
        }

    out: dict = {"by_mode": {}, "judge_all_images": summary(rows)}
    for mode in modes:
        sel = [r for r in rows if r["mode"] == mode]
        cats = sorted({r["category"] for r in sel})
        out["by_mode"][mode] = {"all": summary(sel), **{c: summary([r for r in sel if r["category"] == c]) for c in cats}}
    out["rows"] = rows
    return out


def speed(weights, device: str, steps: int, guidance: float) -> dict:
    """Seconds to load the weights (fresh) and to generate + score 16 images, in plain and in think mode."""
    from srum_core.backends import sandbox
    from srum_core.config import GenerationConfig, JudgeConfig
    from srum_core.world.prompts import make_prompts

    sandbox._CACHE.clear()
    t0 = time.monotonic()
    backend = sandbox.load_sandbox(weights, device=device)
    load_s = time.monotonic() - t0
    prompts = [s.text for s in make_prompts("eval", None, 16, 3)]
    judge = JudgeConfig()
    source = next(iter(backend.box_sources().values()))
    out = {"load_s": round(load_s, 3)}
    for mode in ("plain", "think"):
        config = GenerationConfig(steps=steps, guidance=guidance, mode=mode)
        backend.generate(prompts[:8], list(range(8)), config)  # warm-up
        t0 = time.monotonic()
        samples = backend.generate(prompts, list(range(100, 116)), config)
        gen_s = time.monotonic() - t0
        for s in samples:
            backend.judge_global(s.image, s.prompt, judge)
            backend.judge_regions(s.image, s.prompt, source.propose(s.image, s.prompt, judge.max_regions), judge)
        suffix = "" if mode == "plain" else "_think"
        out[f"generate_16_s{suffix}"] = round(gen_s, 3)
        out[f"generate_and_score_16_s{suffix}"] = round(time.monotonic() - t0, 3)
    return out


COMPOSITIONAL = ("color", "shape", "texture", "spatial", "numeracy", "complex")


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """The embedded model's targets (the issue on the model v2), measured on the in-distribution set:
    ``(target, measured, met)``."""
    res = results["sets"].get("eval")
    if res is None or "plain" not in res["by_mode"]:
        return []
    plain = res["by_mode"]["plain"]
    out: list[tuple[str, str, bool | None]] = []
    single = plain["single"]["referee_accuracy"]
    out.append(("single object ≥ 90% (plain)", f"{single:.1%}", single >= 0.9))
    comp = {c: plain[c]["referee_accuracy"] for c in COMPOSITIONAL if c in plain}
    out.append(("every compositional category 30–75% (plain)",
                ", ".join(f"{c} {v:.0%}" for c, v in comp.items()), all(0.3 <= v <= 0.75 for v in comp.values())))
    overall = plain["all"]["referee_accuracy"]
    out.append(("all categories 40–70% (plain)", f"{overall:.1%}", 0.4 <= overall <= 0.7))
    if "think" in res["by_mode"]:
        think = res["by_mode"]["think"]["all"]["referee_accuracy"]
        out.append(("think ≥ plain + 10 points (all categories)", f"{think:.1%} vs {overall:.1%} "
                    f"({100 * (think - overall):+.1f} points)", think >= overall + 0.10))
    j = res["judge_all_images"]
    ba, au = j["judge_balanced_accuracy"], j["judge_auroc"]
    out.append(("global judge balanced accuracy ≥ 0.90 and AUROC ≥ 0.95 (own plain + think images)",
                f"{ba:.3f} / {au:.3f}" if ba is not None and au is not None else "–",
                None if ba is None or au is None else (ba >= 0.9 and au >= 0.95)))
    oba = j["object_balanced_accuracy"]
    out.append(("per-object judge balanced accuracy ≥ 0.90", "–" if oba is None else f"{oba:.3f}",
                None if oba is None else oba >= 0.9))
    if "speed" in results:
        sp = results["speed"]
        think = sp.get("generate_and_score_16_s_think")
        out.append(("generate + score 16 images ≤ 3 s", f"{sp['generate_and_score_16_s']:.2f} s plain"
                    + ("" if think is None else f", {think:.2f} s think"), sp["generate_and_score_16_s"] <= 3.0))
        out.append(("load ≤ 2 s", f"{sp['load_s']:.2f} s", sp["load_s"] <= 2.0))
    return out


def markdown(results: dict) -> str:
    lines = []
    rows = targets(results)
    if rows:
        lines += ["| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {'yes' if ok else 'no' if ok is not None else '–'} |" for t, m, ok in rows]
        lines.append("")
    for name, res in results["sets"].items():
        modes = list(res["by_mode"])
        cats = [c for c in res["by_mode"][modes[0]] if c != "all"] + ["all"]
        lines += [f"**{name}** ({res['by_mode'][modes[0]]['all']['n']} images per mode)", "",
                  "| category | " + " | ".join(f"{m}: referee" for m in modes) + " | judge BA (" + "/".join(modes) + ") · AUROC | object BA · AUROC |",
                  "|---" * (len(modes) + 3) + "|"]
        for c in cats:
            cells = [f"{res['by_mode'][m][c]['referee_accuracy']:.1%}" for m in modes]
            both = [r for m in modes for r in [res["by_mode"][m][c]]]
            ba = [b["judge_balanced_accuracy"] for b in both]
            au = [b["judge_auroc"] for b in both]
            oba = [b["object_balanced_accuracy"] for b in both]
            oau = [b["object_auroc"] for b in both]

            def fmt(values: list) -> str:
                return "/".join("–" if v is None else f"{v:.2f}" for v in values)

            lines.append(f"| {c} | " + " | ".join(cells) + f" | {fmt(ba)} · {fmt(au)} | {fmt(oba)} · {fmt(oau)} |")
        j = res["judge_all_images"]

        def num(v) -> str:
            return "–" if v is None else f"{v:.3f}"

        lines += ["", f"Global judge on all {j['n']} images: balanced accuracy {num(j['judge_balanced_accuracy'])}, "
                  f"AUROC {num(j['judge_auroc'])}; per-object judge on {j['object_n']} referee detections: balanced "
                  f"accuracy {num(j['object_balanced_accuracy'])}, AUROC {num(j['object_auroc'])}.", ""]
    if "speed" in results:
        s = results["speed"]
        lines.append(f"Speed: load {s['load_s']} s; generate + score 16 images {s['generate_and_score_16_s']} s "
                     f"(generate alone {s['generate_16_s']} s) in plain mode"
                     + (f", {s['generate_and_score_16_s_think']} s (generate alone {s['generate_16_s_think']} s) in "
                        "think mode" if "generate_and_score_16_s_think" in s else "") + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.sandbox_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="TinyUMM folder (default: the shipped assets/tiny-umm)")
    parser.add_argument("--sets", nargs="+", default=["eval", "transfer"], choices=sorted(EVAL_SETS))
    parser.add_argument("--modes", nargs="+", default=["plain", "think"], choices=["plain", "think"])
    parser.add_argument("--per-category", type=int, default=None, help="cap images per category (default: all 100)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    parser.add_argument("--out", type=Path, default=None, help="write the results (JSON) here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables (markdown) here")
    parser.add_argument("--speed-only", action="store_true",
                        help="measure only the speed and add it to the results already at --out (rewrites --markdown)")
    args = parser.parse_args(argv)
    import torch

    from srum_core.backends.sandbox import load_sandbox

    torch.set_num_threads(args.threads)
    if args.speed_only:
        if args.out is None or not args.out.is_file():
            raise SystemExit("error: --speed-only adds to the results at --out; give a JSON written by this script")
        results = json.loads(args.out.read_text())
        results["speed"] = speed(args.weights, args.device, args.steps, args.guidance)
        args.out.write_text(json.dumps(results, indent=1))
        if args.markdown:
            args.markdown.write_text(markdown(results) + "\n")
        print(json.dumps(results["speed"]))
        return 0
    backend = load_sandbox(args.weights, device=args.device)
    results: dict = {"weights": str(args.weights or "assets/tiny-umm"), "steps": args.steps, "guidance": args.guidance,
                     "sets": {}}
    for name in args.sets:
        print(f"{name}:")
        items = set_items(backend, name, args.per_category)
        results["sets"][name] = measure(backend, items, args.modes, args.steps, args.guidance)
    if not args.no_speed:
        results["speed"] = speed(args.weights, args.device, args.steps, args.guidance)
    text = markdown(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
