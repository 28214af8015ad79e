"""The rule-based prompt parser on real T2I-CompBench / GenEval prompts, one category at a time."""

from __future__ import annotations

import argparse
import json

import pytest

from srum_core.prompt_parser import parse_objects, singularize
from srum_core.prompt_sets import load_t2i_compbench


def _summary(text: str) -> tuple[list[tuple], list[tuple]]:
    parsed = parse_objects(text)
    objects = [(o.count, o.color, o.attributes, o.name) for o in parsed.objects]
    relations = [(r.subject, r.relation, r.object) for r in parsed.relations]
    return objects, relations


@pytest.mark.parametrize(
    ("text", "objects", "relations"),
    [
        # color
        ("a green bench and a red car", [(1, "green", (), "bench"), (1, "red", (), "car")], []),
        # shape
        (
            "a pentagonal warning sign and a pyramidal trophy",
            [(1, None, ("pentagonal",), "warning sign"), (1, None, ("pyramidal",), "trophy")],
            [],
        ),
        (
            "an oval serving platter and a square dish",
            [(1, None, ("oval",), "serving platter"), (1, None, ("square",), "dish")],
            [],
        ),
        # texture: a bare plural has no count
        (
            "rubber gloves and a fluffy teddy bear",
            [(None, None, ("rubber",), "gloves"), (1, None, ("fluffy",), "teddy bear")],
            [],
        ),
        # spatial
        ("a book on the left of a bird", [(1, None, (), "book"), (1, None, (), "bird")], [(0, "left of", 1)]),
        (
            "a balloon on the top of a giraffe",
            [(1, None, (), "balloon"), (1, None, (), "giraffe")],
            [(0, "on top of", 1)],
        ),
        ("a mouse on side of a train", [(1, None, (), "mouse"), (1, None, (), "train")], [(0, "on the side of", 1)]),
        (
            "a butterfly on the bottom of a airplane",
            [(1, None, (), "butterfly"), (1, None, (), "airplane")],
            [(0, "below", 1)],
        ),
        # 3d_spatial
        (
            "a horse hidden by a television",
            [(1, None, (), "horse"), (1, None, (), "television")],
            [(0, "hidden by", 1)],
        ),
        ("a sofa in front of a plate", [(1, None, (), "sofa"), (1, None, (), "plate")], [(0, "in front of", 1)]),
        ("a fish behind a butterfly", [(1, None, (), "fish"), (1, None, (), "butterfly")], [(0, "behind", 1)]),
        # numeracy
        ("three dogs and two cats", [(3, None, (), "dogs"), (2, None, (), "cats")], []),
        (
            "one key, four shrimp, two cups and three chickens",
            [(1, None, (), "key"), (4, None, (), "shrimp"), (2, None, (), "cups"), (3, None, (), "chickens")],
            [],
        ),
        # non-spatial: verbs are skipped, the noun phrases remain
        (
            "A dog is barking at a squirrel and trying to chase it away.",
            [(1, None, (), "dog"), (1, None, (), "squirrel")],
            [],
        ),
        # complex
        (
            "The square tissue box is on top of the circular tray.",
            [(1, None, ("square",), "tissue box"), (1, None, ("circular",), "tray")],
            [(0, "on top of", 1)],
        ),
        (
            "The sleek black briefcase sat on top of the rough wooden desk.",
            [(1, "black", ("sleek",), "briefcase"), (1, None, ("rough", "wooden"), "desk")],
            [(0, "on top of", 1)],
        ),
        # GenEval style
        (
            "a photo of a dog right of a teddy bear",
            [(1, None, (), "dog"), (1, None, (), "teddy bear")],
            [(0, "right of", 1)],
        ),
        ("a photo of four knives", [(4, None, (), "knives")], []),
        ("a pair of shoes", [(2, None, (), "shoes")], []),
    ],
)
def test_parse_realistic_prompts(text, objects, relations):
    assert _summary(text) == (objects, relations)


def test_heads_queries_and_properties():
    parsed = parse_objects("two red round balls next to a wooden table")
    balls, table = parsed.objects
    assert (balls.head, balls.plural, balls.shape, balls.texture) == ("ball", True, "round", None)
    assert (table.texture, table.plural) == ("wooden", False)
    assert parsed.queries == ["red round ball", "wooden table"]
    assert parsed.relations[0].relation == "next to"


def test_singularize_rules():
    assert [singularize(w) for w in ["dogs", "benches", "ponies", "knives", "people", "glass", "bus", "shoes"]] == [
        "dog", "bench", "pony", "knife", "person", "glass", "bus", "shoe",
    ]  # fmt: skip


def test_every_shipped_prompt_parses_to_at_least_one_object():
    records = load_t2i_compbench()
    empty = [r["Question"] for r in records if not parse_objects(r["Question"]).objects]
    assert empty == []
    # Spatial prompts of the benchmark always relate exactly two objects.
    for rec in load_t2i_compbench("spatial", n=100, seed=3):
        parsed = parse_objects(rec["Question"])
        assert len(parsed.objects) == 2 and len(parsed.relations) == 1, rec["Question"]


def test_parse_is_deterministic_and_handles_empty_text():
    assert parse_objects("a red car") == parse_objects("a red car")
    assert parse_objects("").objects == ()
    assert parse_objects("!!!").relations == ()


def test_parse_prompt_command_prints_json(capsys):
    from srum_core.commands import CliError, parse_cmd

    parser = argparse.ArgumentParser()
    parse_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["parse-prompt", "a book on the left of a bird", "--compact"])
    assert args.handler(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in data["objects"]] == ["book", "bird"]
    assert data["relations"][0]["relation"] == "left of"
    assert data["relations"][0]["subject_name"] == "book"
    with pytest.raises(CliError):
        args = parser.parse_args(["parse-prompt", "  "])
        args.handler(args)
