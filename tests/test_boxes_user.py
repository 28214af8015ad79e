"""Boxes a user types: every accepted form, and a message that says how to fix each bad one."""

from __future__ import annotations

import pytest

from srum_core.boxes.user import UserBoxes, parse_user_boxes

SIZE = 16


def test_user_boxes_in_every_accepted_form():
    as_json = parse_user_boxes("[[0, 0, 8, 8], [8, 8, 16, 16]]", SIZE, SIZE)
    assert [r.box for r in as_json] == [(0, 0, 8, 8), (8, 8, 16, 16)]
    assert all(r.source == "user" for r in as_json)
    labelled = parse_user_boxes('[{"box": [1, 2, 9, 10], "label": "red circle"}]', SIZE, SIZE)
    assert labelled[0].box == (1, 2, 9, 10) and labelled[0].label == "red circle"
    single = parse_user_boxes("[2, 2, 6, 6]", SIZE, SIZE)
    assert [r.box for r in single] == [(2, 2, 6, 6)]
    lines = parse_user_boxes("0,0,4,4\n4 4 8 8; 8,8,12,12", SIZE, SIZE)
    assert [r.box for r in lines] == [(0, 0, 4, 4), (4, 4, 8, 8), (8, 8, 12, 12)]
    assert parse_user_boxes("  ", SIZE, SIZE) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[0, 0, 8]", "not valid JSON"),
        ("[[0, 0, 8]]", "four numbers"),
        ('[["a", 0, 8, 8]]', "must be numbers"),
        ("[[8, 8, 4, 4]]", "is empty"),
        ("[[40, 40, 50, 50]]", "outside the 16x16 image"),
        ('{"boxes": 3}', "four numbers"),
    ],
)
def test_bad_user_boxes_say_how_to_fix(text, message):
    with pytest.raises(ValueError, match=message):
        parse_user_boxes(text, SIZE, SIZE)


def test_user_boxes_source_returns_the_given_boxes_and_refuses_empty_ones():
    source = UserBoxes([[0, 0, 4, 4], [2, 2, 8, 8]], ["a", None])
    assert [r.box for r in source.propose(None, "", max_regions=1)] == [(0, 0, 4, 4)]
    assert source.kind == "user" and source.propose(None, "")[0].label == "a"
    with pytest.raises(ValueError, match="empty"):
        UserBoxes([[4, 4, 4, 8]])
    with pytest.raises(ValueError, match="one label per box"):
        UserBoxes([[0, 0, 4, 4]], ["a", "b"])
