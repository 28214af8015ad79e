"""SRUM record formats: lossless round trips, bad-line reports, atomic writes (SRUM_SPEC §3)."""

import json

import pytest

from srum_core.records import (
    ScoringRecord,
    TrainingRecord,
    load_records,
    record_from_dict,
    report_from_record,
    scoring_record_from_report,
    training_record_from_report,
    write_jsonl,
)
from srum_core.types import GlobalJudgement, Region, RegionJudgement, RewardReport

SCORING = {
    "image_file": "images/0001.png",
    "prompt": "a red car and a green bench",
    "vlm_rewards": [
        {"identified_object": "red car", "score": 0.9, "reason": "clear", "bbox": [10, 20, 200, 180], "area": 30400},
        {"identified_object": "sky", "score": -0.2, "reason": "background", "bbox": [0, 0, 512, 100], "area": 51200},
    ],
    "global_layout_reward": {
        "global_layout_score": 0.7,
        "reason": "mostly right",
        "bbox": [0, 0, 512, 512],
        "area": 262144,
    },
    "raw_judge_text": {"global": "Score: 0.7\nReason: mostly right", "regions": "..."},
    "custom_field": {"kept": True},
}
TRAINING = {
    "good_image_file": "images/0001.png",
    "bad_image_file": "images/0001.png",
    "prompt": "a red car and a green bench",
    "vlm_rewards": [
        {"object": "global_layout_reward", "bbox": [0, 0, 512, 512], "score": 0.7},
        {"object": "red car", "bbox": [10, 20, 200, 180], "score": 0.9},
    ],
}


@pytest.mark.parametrize("data", [SCORING, TRAINING])
def test_round_trip_is_lossless(data, tmp_path):
    record = record_from_dict(json.loads(json.dumps(data)))
    assert record.to_dict() == data
    path = write_jsonl(tmp_path / "r.jsonl", [record])
    loaded = load_records(path)
    assert loaded.ok and loaded.records[0][1] == record and loaded.records[0][1].to_dict() == data


def test_report_round_trip_keeps_failures_as_failures():
    judged = (
        RegionJudgement(Region((1, 2, 3, 4), "segmenter"), "dog", 0.5, "ok", "raw1", "ok", 0.5),
        RegionJudgement(Region((5, 6, 7, 8), "segmenter"), "cat", None, "", "raw2", "failed", None),
        RegionJudgement(Region((0, 0, 9, 9), "segmenter"), "sun", 1.0, "", "raw3", "clamped", 2.0),
    )
    report = RewardReport("p", 64, 48, GlobalJudgement(0.25, "fine", "Score: 0.25", "ok", 0.25), judged)
    record = scoring_record_from_report(report, "x.png")
    assert record.vlm_rewards[1].score is None and record.vlm_rewards[1].parse_status == "failed"
    back = report_from_record(ScoringRecord.from_dict(json.loads(json.dumps(record.to_dict()))))
    assert (back.width, back.height) == (64, 48)
    assert [j.parse_status for j in back.regions] == ["ok", "failed", "clamped"]
    assert [j.score for j in back.regions] == [0.5, None, 1.0]
    assert back.regions[2].raw_score == 2.0
    assert back.global_judgement.score == 0.25 and back.trainable


def test_training_record_from_report_and_back():
    judged = (
        RegionJudgement(Region((1, 2, 3, 4), "s"), "dog", 0.5),
        RegionJudgement(Region((5, 6, 7, 8), "s"), "cat", None, parse_status="failed"),
    )
    report = RewardReport("p", 32, 32, GlobalJudgement(-0.5), judged)
    tr = training_record_from_report(report, "a.png")
    assert tr.to_dict()["vlm_rewards"] == [
        {"object": "global_layout_reward", "bbox": [0, 0, 32, 32], "score": -0.5},
        {"object": "dog", "bbox": [1, 2, 3, 4], "score": 0.5},
    ]
    back = report_from_record(tr)
    assert back.global_judgement.score == -0.5 and len(back.regions) == 1
    failed = RewardReport("p", 32, 32, GlobalJudgement(None, parse_status="failed"), judged)
    assert training_record_from_report(failed, "a.png") is None


def test_null_global_score_reads_as_failed():
    data = json.loads(json.dumps(SCORING))
    data["global_layout_reward"]["global_layout_score"] = None
    report = report_from_record(record_from_dict(data))
    assert report.global_judgement.parse_status == "failed" and not report.trainable


def test_bad_lines_are_reported_with_number_and_reason(tmp_path):
    lines = [
        json.dumps(SCORING),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({**TRAINING, "vlm_rewards": [{"object": "x", "bbox": [0, 0, 1], "score": 1}]}),
        json.dumps({**SCORING, "vlm_rewards": [{"identified_object": "x", "score": "high", "bbox": [0, 0, 1, 1]}]}),
        json.dumps({"hello": "world"}),
        json.dumps(TRAINING),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_records(path)
    assert [n for n, _ in loaded.records] == [1, 8]
    assert isinstance(loaded.records[1][1], TrainingRecord)
    bad = {b.line: b.reason for b in loaded.bad_lines}
    assert sorted(bad) == [2, 4, 5, 6, 7]
    assert "not valid JSON" in bad[2]
    assert "JSON object" in bad[4]
    assert "vlm_rewards[0].bbox" in bad[5]
    assert "vlm_rewards[0].score" in bad[6]
    assert "not a SRUM record" in bad[7]
    assert "line 2" in loaded.summary()


def test_writes_are_atomic_and_never_silently_overwrite(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [SCORING])
    with pytest.raises(FileExistsError, match="already exists"):
        write_jsonl(path, [TRAINING])
    assert json.loads(path.read_text()) == SCORING
    write_jsonl(path, [TRAINING], overwrite=True)
    assert json.loads(path.read_text()) == TRAINING
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp files left behind


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_records(tmp_path / "nope.jsonl")
