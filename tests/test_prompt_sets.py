"""The shipped T2I-CompBench prompt set."""

from __future__ import annotations

import pytest

from srum_core.prompt_sets import T2I_CATEGORIES, load_t2i_compbench


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
