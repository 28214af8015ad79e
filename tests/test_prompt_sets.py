"""Prompt sources: the shipped T2I-CompBench set, prompt files, and a backend's own prompt sets."""

from __future__ import annotations

import json

import pytest

from srum_core.prompt_sets import T2I_CATEGORIES, T2I_COMPBENCH, load_t2i_compbench, sample_prompts, share_out
from tests.fakes import FakeBackend


def test_counts_per_category_match_the_shipped_file():
    records = load_t2i_compbench()
    assert len(records) == 6234
    for cat in ("color", "shape", "texture", "spatial", "3d_spatial", "non-spatial", "numeracy", "complex"):
        assert len(load_t2i_compbench(cat)) == 700
    assert len(load_t2i_compbench("complex_action")) == 504
    assert len(load_t2i_compbench("complex_spatial")) == 130
    assert {r["Category"] for r in records} == set(T2I_CATEGORIES)


def test_subsets_are_seeded_and_in_file_order():
    a = load_t2i_compbench("color", n=5, seed=1)
    assert a == load_t2i_compbench("color", n=5, seed=1)
    assert a != load_t2i_compbench("color", n=5, seed=2)
    ids = [r["Question_id"] for r in a]
    assert ids == sorted(ids) and all(r["Category"] == "color" for r in a)
    assert load_t2i_compbench("numeracy", n=0) == []


def test_bad_requests_say_how_to_fix():
    with pytest.raises(ValueError, match="choose one of: color, shape"):
        load_t2i_compbench("colour")
    with pytest.raises(ValueError, match="at most 130"):
        load_t2i_compbench("complex_spatial", n=131)
    with pytest.raises(FileNotFoundError, match="restore"):
        load_t2i_compbench(path="/nonexistent/prompts.json")


def test_prompt_file_sampling(tmp_path):
    path = tmp_path / "compbench.json"
    path.write_text(
        json.dumps(
            [{"Question": f"q{i}", "Category": "color" if i % 2 else "shape", "Question_id": i} for i in range(10)]
        )
    )
    items = sample_prompts(FakeBackend(), str(path), ["color"], 3, seed=0)
    assert len(items) == 3 and all(i.category == "color" for i in items)
    assert items == sample_prompts(FakeBackend(), str(path), ["color"], 3, seed=0)
    with pytest.raises(ValueError, match="fewer than"):
        sample_prompts(FakeBackend(), str(path), ["color"], 6, seed=0)
    with pytest.raises(FileNotFoundError):
        sample_prompts(FakeBackend(), str(tmp_path / "missing.json"), None, 1, seed=0)


def test_a_source_is_a_backend_prompt_set_then_t2i_compbench_then_a_file(tmp_path):
    backend = FakeBackend()
    own = sample_prompts(backend, "val", ["color"], 2, seed=4)
    assert own == backend.prompts("val", ["color"], 2, 4)
    compbench = sample_prompts(backend, T2I_COMPBENCH, ["numeracy"], 3, seed=1)
    assert len(compbench) == 3 and all(item.category == "numeracy" for item in compbench)
    assert compbench == sample_prompts(backend, T2I_COMPBENCH, ["numeracy"], 3, seed=1)
    with pytest.raises(FileNotFoundError, match=r"\(train, val, t2i-compbench\)"):
        sample_prompts(backend, "vall", None, 1, seed=0)


def test_share_out_gives_the_first_categories_one_more():
    assert share_out(["a", "b", "c"], 5) == [("a", 2), ("b", 2), ("c", 1)]
    assert share_out(["a"], 0) == [("a", 0)]


def test_backends_of_real_images_offer_t2i_compbench_and_no_referee():
    from srum_core.backends.bagel import BagelBackend
    from srum_core.backends.janus import JanusBackend
    from srum_core.prompt_sets import T2ICompBenchWorld

    assert issubclass(JanusBackend, T2ICompBenchWorld) and issubclass(BagelBackend, T2ICompBenchWorld)
    world = T2ICompBenchWorld()
    assert world.prompt_sets() == (T2I_COMPBENCH,) and world.categories() == T2I_CATEGORIES
    items = world.prompts(T2I_COMPBENCH, ["color", "spatial"], 4, seed=2)
    assert len(items) == 4 and {i.category for i in items} <= {"color", "spatial"}
    assert world.referee() is None and all(text for _, text in world.example_prompts())
    with pytest.raises(ValueError, match="t2i-compbench"):
        world.prompts("val", None, 1, seed=0)
