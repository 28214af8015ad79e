"""The embedded model's quality (TinyUMM, the sandbox backend), measured by the world's independent referee.

    python -m experiments.sandbox_quality [--weights assets/tiny-umm] [--n 20] [--steps 20] [--guidance 3.0]

Prints each number (and writes them as JSON with ``--json PATH``):
1. judge quality on the model's OWN generations of validation prompts: agreement with the referee of
   - the global yes/no (``g > 0``) with the referee's verdict, for the default grounded judge and, for
     comparison, for the ``<ask>`` head alone;
   - the per-object yes/no (region score > 0, crop view, on the referee's detected boxes) with "this detection
     is an object the prompt asks for (colour, shape, texture, size as far as the prompt fixes them)";
2. base generation accuracy (referee pass rate) per category on validation prompts;
3. for the model card, the speed measured by ``bench.bench_sandbox`` in the same run.
The referee only measures here; it never feeds the model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.bench_sandbox import load_timed, measure_speed


def object_wanted(det, spec) -> bool:
    for obj in spec.objects:
        if obj.shape != det.shape:
            continue
        if obj.color is not None and obj.color != det.color:
            continue
        if obj.texture is not None and obj.texture != det.texture:
            continue
        if obj.size is not None and obj.size != det.size:
            continue
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="TinyUMM folder (default: shipped assets/tiny-umm)")
    parser.add_argument("--n", type=int, default=20, help="validation prompts per category (default 20)")
    parser.add_argument("--steps", type=int, default=20, help="Euler steps (default 20)")
    parser.add_argument("--guidance", type=float, default=3.0, help="CFG scale (default 3.0)")
    parser.add_argument("--seed", type=int, default=0, help="prompt seed and first image seed (default 0)")
    parser.add_argument("--split", default="val", choices=("val", "train"), help="prompt split (default val)")
    parser.add_argument("--region-view", default="crop", choices=("crop", "coords", "boxes"),
                        help="how the per-object judge is shown a region (default crop)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--save-images", type=Path, default=None, help="folder to save the generated images in")
    parser.add_argument("--update-card", action="store_true", help="write the numbers into the weights' README.md")
    args = parser.parse_args(argv)

    from srum_core.config import GenerationConfig, JudgeConfig
    from srum_core.types import Region
    from srum_core.world.prompts import make_prompts
    from srum_core.world.referee import verify
    from srum_core.world.spec import CATEGORIES

    backend, load = load_timed(args.weights, args.threads)
    gen = GenerationConfig(steps=args.steps, guidance=args.guidance)
    judge = JudgeConfig(region_view=args.region_view)
    results: dict = {"settings": vars(args) | {"json": None, "save_images": None, "weights": args.weights},
                     **load, "categories": {}}  # fmt: skip

    g_agree, g_total, o_agree, o_total, ask_agree = 0, 0, 0, 0, 0
    g_confusion = {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
    all_pass, all_n = 0, 0
    for cat in CATEGORIES:
        specs = make_prompts(args.split, cat, args.n, args.seed)
        seeds = [args.seed + i for i in range(len(specs))]
        samples = backend.generate([s.text for s in specs], seeds, gen)
        passed = 0
        cat_g_agree = 0
        for i, (spec, sample) in enumerate(zip(specs, samples)):
            if args.save_images is not None:
                args.save_images.mkdir(parents=True, exist_ok=True)
                sample.image.save(args.save_images / f"{cat}_{i:03d}.png")
            verdict = verify(sample.image, spec)
            passed += verdict.passed
            backend.global_judge = "ask"
            ask_agree += (backend.judge_global(sample.image, spec.text, judge).score > 0) == verdict.passed
            backend.global_judge = "grounded"
            g = backend.judge_global(sample.image, spec.text, judge)
            says_yes = g.score > 0
            cat_g_agree += says_yes == verdict.passed
            g_confusion[("t" if says_yes == verdict.passed else "f") + ("p" if says_yes else "n")] += 1
            dets = verdict.detections
            if dets:
                regions = [Region(box=d.box, source="referee") for d in dets]
                judged = backend.judge_regions(sample.image, spec.text, regions, judge)
                for d, j in zip(dets, judged):
                    if j.score is None:
                        continue
                    o_agree += (j.score > 0) == object_wanted(d, spec)
                    o_total += 1
        g_agree += cat_g_agree
        g_total += len(specs)
        all_pass += passed
        all_n += len(specs)
        acc = passed / len(specs)
        results["categories"][cat] = {"referee_accuracy": acc, "judge_agreement": cat_g_agree / len(specs), "n": len(specs)}
        print(f"{cat:10s} referee accuracy {acc:6.1%}   global judge agreement {cat_g_agree / len(specs):6.1%}   (n={len(specs)})")
    results["referee_accuracy_overall"] = all_pass / all_n
    results["global_judge_agreement"] = g_agree / g_total
    results["global_judge_confusion"] = g_confusion
    results["ask_head_agreement"] = ask_agree / g_total
    results["object_judge_agreement"] = o_agree / max(1, o_total)
    results["object_judgements"] = o_total
    results["region_view"] = args.region_view
    print(f"overall referee accuracy {all_pass / all_n:.1%}")
    print(f"global judge (grounded) agrees with referee: {g_agree / g_total:.1%} ({g_total} images; {g_confusion})")
    print(f"  its <ask> head alone (global_judge='ask') agrees: {ask_agree / g_total:.1%}")
    print(f"per-object judge agrees with referee: {o_agree / max(1, o_total):.1%} ({o_total} referee detections)")

    results["speed"] = measure_speed(backend, gen, judge, args.threads, args.seed)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    if args.update_card:
        update_card(Path(backend.source), results)
    return 0


def measured_markdown(results: dict) -> str:
    """The model card's "Measured metrics" section."""
    s = results["settings"]
    sp = results["speed"]
    lines = [
        f"Measured by `python -m experiments.sandbox_quality --n {s['n']} --steps {s['steps']} --guidance {s['guidance']} "
        f"--seed {s['seed']} --threads {s['threads']} --split {s['split']}` on the 2-core CPU development machine (other jobs were running"
        " on it, so timings are indicative). "
        + ("Validation-split prompts (every one holds a held-out colour-shape pairing)" if s["split"] == "val"
           else "Training-split prompts")
        + ", one image each, judged by the world's non-learned referee.",
        "",
        "| category | referee accuracy | global judge agrees with referee |",
        "|---|---|---|",
    ]
    for cat, r in results["categories"].items():
        lines.append(f"| {cat} | {r['referee_accuracy']:.0%} | {r['judge_agreement']:.0%} |")
    lines += [
        f"| **overall** | {results['referee_accuracy_overall']:.1%} | {results['global_judge_agreement']:.1%} |",
        "",
        f"- per-object judge ({results.get('region_view', 'crop')} view, on the referee's detected boxes) agrees "
        f"with the referee on "
        f"{results['object_judge_agreement']:.1%} of {results['object_judgements']} objects;",
        f"- global judge confusion (t/f = agrees/disagrees, p/n = said yes/no): {results['global_judge_confusion']};",
        "- the global judge is the default `grounded` one (the `<ask>` head's P(yes), lowered for each failed check of"
        " the model's own findings against the prompt); the `<ask>` head alone agrees on "
        f"{results.get('ask_head_agreement', float('nan')):.1%};",
        f"- speed: generate 16 images {sp['generate_seconds']} s + score them (global, self-grounding, regions) "
        f"{sp['score_seconds']} s = {sp['total_seconds']} s; {sp['gflop']} GFLOP → {sp['achieved_gflops']} GFLOP/s ="
        f" {sp['fraction_of_matmul']:.1%} of the fp32 matmul rate measured in the same run "
        f"({sp['matmul_fp32_gflops']} GFLOP/s, {sp['threads']} threads);",
        f"- load time: {results['load_seconds']} s for the weights after {results['import_seconds']} s importing diffusers.",
    ]
    return "\n".join(lines)


def update_card(folder: Path, results: dict) -> None:
    from dataclasses import fields

    from srum_core.tinyumm.data import PoolConfig
    from srum_core.tinyumm.train import TrainRunConfig, write_model_card

    split = results["settings"]["split"]
    (folder / f"bench_{split}.json").write_text(json.dumps(results, indent=2))
    parts = []
    for name in ("val", "train"):  # every split measured so far, validation first
        path = folder / f"bench_{name}.json"
        if path.is_file():
            parts.append(f"### {name} split\n\n" + measured_markdown(json.loads(path.read_text())))
    raw = json.loads((folder / "training_config.json").read_text())
    raw["pool"] = PoolConfig(**raw["pool"])
    config = TrainRunConfig(**{f.name: raw[f.name] for f in fields(TrainRunConfig) if f.name in raw})
    summary = json.loads((folder / "train_summary.json").read_text())
    write_model_card(folder, config, summary, "\n\n".join(parts))
    print(f"updated {folder / 'README.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
