"""``evaluate`` end to end on the real backends' code with tiny random weights in their published layouts: Janus,
BAGEL and a diffusers + VLM pair, each scored by an independent judge of every question-answering kind (a local
Qwen2.5-VL, holistic and decomposed; an OpenAI-compatible endpoint, a stub server started here), on both
evaluation sets (the shipped T2I-ReasonBench-style set and a user copy of T2I-CompBench's validation prompts)."""

from __future__ import annotations

import json

import pytest

from srum_core.config import GenerationConfig
from srum_core.eval_judges import EvalJudgeConfig
from srum_core.eval_runs import EvaluationConfig, run_evaluation, states_for
from tests.conftest_bagel import build_tiny_bagel
from tests.conftest_janus import build_tiny_janus
from tests.conftest_pair import build_tiny_qwen25vl, build_tiny_sd3
from tests.test_eval_judges import _Stub, stub_server  # noqa: F401 (the fixture)

GEN = GenerationConfig(steps=2, guidance=3.0, batch_size=2, device="cpu")
FAST = {"max_global_tokens": 6, "max_region_tokens": 6, "max_grounding_tokens": 6}
BAGEL_FAST = {"max_think_tokens": 6, "max_global_tokens": 6, "max_region_tokens": 8, "sam_model": None,
              "grounding_model": None}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    compbench = root / "compbench"
    compbench.mkdir()
    (compbench / "color_val.txt").write_text("a red car and a blue bench\na green apple\n", encoding="utf-8")
    (compbench / "spatial_val.txt").write_text("a dog on the left of a cat\n", encoding="utf-8")
    return {"janus": build_tiny_janus(root / "janus"), "bagel": build_tiny_bagel(root / "bagel"),
            "sd3": build_tiny_sd3(root / "sd3"), "qwen": build_tiny_qwen25vl(root / "qwen"),
            "compbench": compbench}  # fmt: skip


def _backend(kind, models):
    if kind == "janus":
        from srum_core.backends.janus import load_janus

        return load_janus(str(models["janus"]), device="cpu", use_cache=False)
    if kind == "bagel":
        from srum_core.backends.bagel import load_bagel

        return load_bagel(str(models["bagel"]), device="cpu", use_cache=False, mode="plain", **BAGEL_FAST)
    from srum_core.backends.pair import load_pair

    return load_pair(str(models["sd3"]), str(models["qwen"]), device="cpu", use_cache=False, image_size=32,
                     judge_mode="likelihood", **FAST)


@pytest.mark.parametrize(
    ("backend_kind", "judge_kind", "decompose"),
    [("janus", "vlm", False), ("bagel", "openai", True), ("pair", "vlm", True)],
)
def test_evaluate_runs_end_to_end_on_a_real_backend_with_an_independent_judge(
    models, stub_server, tmp_path, monkeypatch, backend_kind, judge_kind, decompose  # noqa: F811
):
    monkeypatch.setenv("STUB_KEY", "sk-never-stored")
    backend = _backend(backend_kind, models)
    if judge_kind == "vlm":
        judge = EvalJudgeConfig(kind="vlm", model=str(models["qwen"]), device="cpu", decompose=decompose)
    else:
        judge = EvalJudgeConfig(kind="openai", model="stub-vl", base_url=stub_server, api_key_env="STUB_KEY",
                                decompose=decompose)
    sets = {"reasonbench-style": ("idiom", "entity"), f"t2i-compbench-val:{models['compbench']}": ("color", "spatial")}
    for name, categories in sets.items():
        out = tmp_path / name.split(":")[0]
        config = EvaluationConfig(eval_set=name, categories=categories, n_per_category=1, seeds=(0,), judge=judge)
        results = run_evaluation(backend, states_for([]), config, out, generation=GEN)
        base = results["per_state"]["base"]
        assert set(base["per_category"]) == set(categories)
        assert base["overall"]["n"] == len(categories)
        assert 0.0 <= base["overall"]["score"] <= 100.0
        assert results["judge"].startswith(("holistic:", "decomposed:"))
        assert results["judge"].startswith("decomposed:") == decompose
        items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
        assert len(items) == len(categories) and all((out / i["image"]).is_file() for i in items)
        if decompose:
            assert all(len(i["questions"]) >= 1 for i in items)
        assert "sk-never-stored" not in (out / "evaluation.json").read_text()
    if judge_kind == "openai":
        assert _Stub.requests and _Stub.requests[0]["auth"] == "Bearer sk-never-stored"
