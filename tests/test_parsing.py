"""Judge-output parsing built from realistic judge answers (SRUM_SPEC §1.4)."""

import pytest

from srum_core.parsing import format_region_request, parse_global_response, parse_region_response
from srum_core.types import Region

GLOBAL_WITH_THINK = """<think>
The prompt asks for a dog to the left of a cat. Score: -1.0 would be too harsh? Let me look again.
</think>
Score: 0.8
Reason: The dog is on the left and the cat on the right, but the cat is partly cut off."""


def test_global_reads_text_after_the_last_think_block():
    j = parse_global_response(GLOBAL_WITH_THINK, question="q?")
    assert j.score == pytest.approx(0.8) and j.parse_status == "ok"
    assert j.reason.startswith("The dog is on the left") and j.reason.endswith("cut off.")
    assert j.raw_text == GLOBAL_WITH_THINK and j.question == "q?"


@pytest.mark.parametrize(
    "text, score, status",
    [
        ("Score: -0.5\nReason: wrong side", -0.5, "ok"),
        ("**Score:** +1\n**Reason:** perfect", 1.0, "ok"),
        ("score: .7\nreason: fine", 0.7, "ok"),
        ("Score: 8\nReason: out of ten", 1.0, "clamped"),
        ("Score: -3.5\nReason: very wrong", -1.0, "clamped"),
        ("Score: −0.4\nReason: unicode minus", -0.4, "ok"),
    ],
)
def test_global_scores_signs_and_clamping(text, score, status):
    j = parse_global_response(text)
    assert j.score == pytest.approx(score) and j.parse_status == status


def test_global_clamped_keeps_the_raw_number():
    j = parse_global_response("Score: 8\nReason: x")
    assert j.raw_score == 8.0 and j.usable


@pytest.mark.parametrize(
    "text",
    ["", "The image looks great!", "<think>Score: 0.9</think>I cannot judge this.", "Score: high\nReason: good"],
)
def test_global_failure_is_a_failure_not_zero(text):
    j = parse_global_response(text)
    assert j.score is None and j.parse_status == "failed" and not j.usable
    assert j.raw_text == text


REGIONS = [Region((0, 0, 10, 10), "sam"), Region((5, 5, 20, 20), "sam"), Region((0, 20, 8, 30), "sam")]

REGIONAL_DASHES = """<think>three regions to look at</think>
Region ID: 1
Identified Object: brown dog
Score: 0.9
Reason: A clear dog, as requested.
---
Region ID: 2
Identified Object: grey cat
Score: -0.6
Reason: The cat has three ears.
---
Region ID: 3
Identified Object: grass
Score: 0.0
Reason: Background."""


def test_regions_split_by_dashes():
    js = parse_region_response(REGIONAL_DASHES, REGIONS)
    assert [j.object_name for j in js] == ["brown dog", "grey cat", "grass"]
    assert [j.score for j in js] == pytest.approx([0.9, -0.6, 0.0])
    assert all(j.parse_status == "ok" for j in js)
    assert js[1].reason == "The cat has three ears."
    assert js[0].region is REGIONS[0]


def test_regions_split_by_blank_lines_out_of_order_with_markdown():
    text = (
        "**Region ID:** 2\n**Identified Object:** cat\n**Score:** 0.5\n**Reason:** ok\n\n"
        "**Region ID:** 1\n**Identified Object:** dog\n**Score:** 1.5\n**Reason:** great\n"
    )
    js = parse_region_response(text, REGIONS)
    assert js[0].object_name == "dog" and js[0].score == 1.0 and js[0].parse_status == "clamped"
    assert js[0].raw_score == 1.5
    assert js[1].object_name == "cat" and js[1].score == 0.5
    assert js[2].parse_status == "missing" and js[2].score is None


def test_regions_without_separators_and_a_malformed_block():
    text = (
        "Region ID: 1\nIdentified Object: dog\nScore: 0.3\nReason: small\n"
        "Region ID: 2\nIdentified Object: cat\nScore: N/A\nReason: cannot tell\n"
        "Region ID: 3\nIdentified Object: tree\nReason: forgot the score\n"
    )
    js = parse_region_response(text, REGIONS)
    assert js[0].score == pytest.approx(0.3) and js[0].reason == "small"
    assert js[1].score is None and js[1].parse_status == "failed" and js[1].object_name == "cat"
    assert js[2].score is None and js[2].parse_status == "failed"
    assert "Score: N/A" in js[1].raw_text


def test_regions_garbage_text_marks_every_region():
    js = parse_region_response("I see a nice picture.", REGIONS[:2])
    # One unlabelled block: it is matched to region 1 (no score in it) and region 2 got no answer.
    assert [j.parse_status for j in js] == ["failed", "missing"]
    assert all(j.score is None for j in js)


def test_region_request_format():
    text = format_region_request(REGIONS[:2])
    assert text == "Region ID: 1\nBounding Box: [0, 0, 10, 10]\n\nRegion ID: 2\nBounding Box: [5, 5, 20, 20]"
