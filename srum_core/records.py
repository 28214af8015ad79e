"""SRUM's JSONL record formats (SRUM_SPEC §3): scoring records and training records.

- Scoring record (one line per judged image)::

    {"image_file", "prompt",
     "vlm_rewards": [{"identified_object", "score", "reason", "bbox", "area"}, ...],
     "global_layout_reward": {"global_layout_score", "reason", "bbox": [0, 0, W, H], "area"},
     "raw_judge_text": {"global": str, "regions": str}}

  This project adds, per reward, ``parse_status`` / ``raw_score`` / ``source`` where it knows them; a score the
  judge's text did not give is ``null`` with ``parse_status: "failed"`` (never a neutral 0).
- Training record::

    {"good_image_file", "bad_image_file", "prompt",
     "vlm_rewards": [{"object": "global_layout_reward", "bbox": [0, 0, W, H], "score": g},
                     {"object": name, "bbox": [...], "score": s}, ...]}

Reading keeps every key it does not know (``extra``) so a file round-trips losslessly. Loading a file with bad
lines keeps the good ones and reports every bad line with its number and why; a record over the limits of
:class:`RecordLimits` (regions, declared image size, prompt length — a reward map's cost grows with each) is such
a bad line, refused before any map is built. Writes are atomic (temp file + rename) and refuse to overwrite
unless asked.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import MAX_IMAGE_SIDE, MAX_PROMPT_CHARS, MAX_RECORD_REGIONS
from .types import GlobalJudgement, Region, RegionJudgement, RewardReport

GLOBAL_OBJECT = "global_layout_reward"


class RecordError(ValueError):
    """A record that does not follow SRUM's formats; the message says which field and why."""


@dataclass(frozen=True)
class RecordLimits:
    """What one record may hold before it is refused: the reward map of a record costs ``W x H`` per region."""

    max_regions: int = MAX_RECORD_REGIONS
    max_side: int = MAX_IMAGE_SIDE
    max_prompt_chars: int = MAX_PROMPT_CHARS

    def check_size(self, width: int, height: int) -> None:
        if width > self.max_side or height > self.max_side:
            raise RecordError(
                f"the image size {width}x{height} is larger than {self.max_side}x{self.max_side}, the largest read"
            )

    def check(self, data: dict[str, Any]) -> None:
        """Refuse a parsed JSON record over the limits, before its regions are read."""
        rewards = data.get("vlm_rewards")
        if isinstance(rewards, list):
            training = "good_image_file" in data or "bad_image_file" in data
            regions = len(rewards) - (1 if training else 0)  # a training record lists the global entry there too
            if regions > self.max_regions:
                raise RecordError(f"{regions} regions; at most {self.max_regions} per record are read")
        prompt = data.get("prompt")
        if isinstance(prompt, str) and len(prompt) > self.max_prompt_chars:
            raise RecordError(f"the prompt is {len(prompt)} characters long; at most {self.max_prompt_chars} are read")


DEFAULT_LIMITS = RecordLimits()


def _number(value: Any, what: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise RecordError(f"{what} must be a finite number{' or null' if allow_none else ''}, got {value!r}")
    return value


def _bbox(value: Any, what: str) -> list[int | float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise RecordError(f"{what} must be a list [x1, y1, x2, y2], got {value!r}")
    for v in value:
        _number(v, what)
    return list(value)


def _str(value: Any, what: str, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


@dataclass(frozen=True)
class RegionReward:
    """One entry of a scoring record's ``vlm_rewards``."""

    identified_object: str
    score: float | None
    reason: str | None = None
    bbox: list[int | float] = field(default_factory=lambda: [0, 0, 0, 0])
    area: float | None = None
    parse_status: str | None = None
    raw_score: float | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("identified_object", "score", "reason", "bbox", "area", "parse_status", "raw_score", "source")

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RegionReward:
        data = _mapping(data, where)
        if "bbox" not in data:
            raise RecordError(f"{where}.bbox is missing")
        if "score" not in data:
            raise RecordError(f"{where}.score is missing")
        return cls(
            identified_object=_str(data.get("identified_object", ""), f"{where}.identified_object") or "",
            score=_number(data["score"], f"{where}.score", allow_none=True),
            reason=_str(data.get("reason"), f"{where}.reason"),
            bbox=_bbox(data["bbox"], f"{where}.bbox"),
            area=_number(data.get("area"), f"{where}.area", allow_none=True),
            parse_status=_str(data.get("parse_status"), f"{where}.parse_status"),
            raw_score=_number(data.get("raw_score"), f"{where}.raw_score", allow_none=True),
            source=_str(data.get("source"), f"{where}.source"),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"identified_object": self.identified_object, "score": self.score}
        _put(out, "reason", self.reason)
        out["bbox"] = list(self.bbox)
        for key in ("area", "parse_status", "raw_score", "source"):
            _put(out, key, getattr(self, key))
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class GlobalReward:
    """A scoring record's ``global_layout_reward``."""

    global_layout_score: float | None
    bbox: list[int | float]
    reason: str | None = None
    area: float | None = None
    parse_status: str | None = None
    raw_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("global_layout_score", "reason", "bbox", "area", "parse_status", "raw_score")

    @classmethod
    def from_dict(cls, data: Any, where: str) -> GlobalReward:
        data = _mapping(data, where)
        if "global_layout_score" not in data:
            raise RecordError(f"{where}.global_layout_score is missing")
        if "bbox" not in data:
            raise RecordError(f"{where}.bbox is missing (it gives the image size as [0, 0, W, H])")
        return cls(
            global_layout_score=_number(data["global_layout_score"], f"{where}.global_layout_score", allow_none=True),
            bbox=_bbox(data["bbox"], f"{where}.bbox"),
            reason=_str(data.get("reason"), f"{where}.reason"),
            area=_number(data.get("area"), f"{where}.area", allow_none=True),
            parse_status=_str(data.get("parse_status"), f"{where}.parse_status"),
            raw_score=_number(data.get("raw_score"), f"{where}.raw_score", allow_none=True),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"global_layout_score": self.global_layout_score}
        _put(out, "reason", self.reason)
        out["bbox"] = list(self.bbox)
        for key in ("area", "parse_status", "raw_score"):
            _put(out, key, getattr(self, key))
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class ScoringRecord:
    """One judged image in SRUM's scoring format."""

    image_file: str
    prompt: str
    vlm_rewards: tuple[RegionReward, ...]
    global_layout_reward: GlobalReward | None
    raw_judge_text: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("image_file", "prompt", "vlm_rewards", "global_layout_reward", "raw_judge_text")
    kind = "scoring"

    @classmethod
    def from_dict(cls, data: Any) -> ScoringRecord:
        data = _mapping(data, "record")
        for key in ("image_file", "prompt", "vlm_rewards"):
            if key not in data:
                raise RecordError(f"{key} is missing")
        rewards = data["vlm_rewards"]
        if not isinstance(rewards, list):
            raise RecordError(f"vlm_rewards must be a list, got {type(rewards).__name__}")
        glob = data.get("global_layout_reward")
        return cls(
            image_file=_str(data["image_file"], "image_file", allow_none=False),
            prompt=_str(data["prompt"], "prompt", allow_none=False),
            vlm_rewards=tuple(RegionReward.from_dict(r, f"vlm_rewards[{i}]") for i, r in enumerate(rewards)),
            global_layout_reward=None if glob is None else GlobalReward.from_dict(glob, "global_layout_reward"),
            raw_judge_text=data.get("raw_judge_text"),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image_file": self.image_file,
            "prompt": self.prompt,
            "vlm_rewards": [r.to_dict() for r in self.vlm_rewards],
            "global_layout_reward": None if self.global_layout_reward is None else self.global_layout_reward.to_dict(),
        }
        _put(out, "raw_judge_text", self.raw_judge_text)
        out.update(self.extra)
        return out

    def image_size(self) -> tuple[int, int] | None:
        """``(W, H)`` from the global region's box ``[0, 0, W, H]``, if the record has one."""
        if self.global_layout_reward is None:
            return None
        x1, y1, x2, y2 = self.global_layout_reward.bbox
        return int(x2 - x1), int(y2 - y1)


@dataclass(frozen=True)
class TrainingEntry:
    """One entry of a training record's ``vlm_rewards`` (``object == "global_layout_reward"`` for the global)."""

    object: str
    bbox: list[int | float]
    score: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrainingEntry:
        data = _mapping(data, where)
        for key in ("object", "bbox", "score"):
            if key not in data:
                raise RecordError(f"{where}.{key} is missing")
        return cls(
            object=_str(data["object"], f"{where}.object", allow_none=False),
            bbox=_bbox(data["bbox"], f"{where}.bbox"),
            score=_number(data["score"], f"{where}.score"),
            extra={k: v for k, v in data.items() if k not in ("object", "bbox", "score")},
        )

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "bbox": list(self.bbox), "score": self.score, **self.extra}


@dataclass(frozen=True)
class TrainingRecord:
    """One training example in SRUM's training format (good image = bad image = the generated one)."""

    good_image_file: str
    bad_image_file: str
    prompt: str
    vlm_rewards: tuple[TrainingEntry, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("good_image_file", "bad_image_file", "prompt", "vlm_rewards")
    kind = "training"

    @classmethod
    def from_dict(cls, data: Any) -> TrainingRecord:
        data = _mapping(data, "record")
        for key in cls._KEYS:
            if key not in data:
                raise RecordError(f"{key} is missing")
        if not isinstance(data["vlm_rewards"], list):
            raise RecordError("vlm_rewards must be a list")
        return cls(
            good_image_file=_str(data["good_image_file"], "good_image_file", allow_none=False),
            bad_image_file=_str(data["bad_image_file"], "bad_image_file", allow_none=False),
            prompt=_str(data["prompt"], "prompt", allow_none=False),
            vlm_rewards=tuple(
                TrainingEntry.from_dict(r, f"vlm_rewards[{i}]") for i, r in enumerate(data["vlm_rewards"])
            ),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "good_image_file": self.good_image_file,
            "bad_image_file": self.bad_image_file,
            "prompt": self.prompt,
            "vlm_rewards": [e.to_dict() for e in self.vlm_rewards],
            **self.extra,
        }

    @property
    def global_entry(self) -> TrainingEntry | None:
        return next((e for e in self.vlm_rewards if e.object == GLOBAL_OBJECT), None)

    def image_size(self) -> tuple[int, int] | None:
        entry = self.global_entry
        if entry is None:
            return None
        x1, y1, x2, y2 = entry.bbox
        return int(x2 - x1), int(y2 - y1)


Record = ScoringRecord | TrainingRecord


def record_from_dict(data: Any, limits: RecordLimits = DEFAULT_LIMITS) -> Record:
    """Parse one JSON object as whichever SRUM format it follows, refusing one over ``limits``."""
    data = _mapping(data, "record")
    limits.check(data)
    record: Record
    if "good_image_file" in data or "bad_image_file" in data:
        record = TrainingRecord.from_dict(data)
    elif "global_layout_reward" in data or "image_file" in data:
        record = ScoringRecord.from_dict(data)
    else:
        raise RecordError(
            "not a SRUM record: expected a scoring record (image_file, global_layout_reward, vlm_rewards) "
            "or a training record (good_image_file, bad_image_file, vlm_rewards)"
        )
    size = record.image_size()
    if size is not None:
        limits.check_size(*size)
    return record


# --- conversions between records and reward reports -------------------------------------------------------


def scoring_record_from_report(report: RewardReport, image_file: str) -> ScoringRecord:
    """The scoring record of ``report`` (failed scores stay ``null`` with their parse status)."""
    g = report.global_judgement
    rewards = tuple(
        RegionReward(
            identified_object=j.object_name,
            score=j.score,
            reason=j.reason,
            bbox=list(j.region.box),
            area=j.region.area,
            parse_status=j.parse_status,
            raw_score=j.raw_score,
            source=j.region.source,
        )
        for j in report.regions
    )
    glob = GlobalReward(
        global_layout_score=g.score,
        reason=g.reason,
        bbox=[0, 0, report.width, report.height],
        area=report.width * report.height,
        parse_status=g.parse_status,
        raw_score=g.raw_score,
    )
    raw = {"global": g.raw_text, "regions": [j.raw_text for j in report.regions]}
    return ScoringRecord(
        image_file=image_file, prompt=report.prompt, vlm_rewards=rewards, global_layout_reward=glob, raw_judge_text=raw
    )


def _status(status: str | None, score: float | None) -> str:
    if score is None:
        return "failed" if status in (None, "ok", "clamped") else status
    return status or "ok"


def _size_from(record: Record, size: tuple[int, int] | None, limits: RecordLimits) -> tuple[int, int]:
    found = size or record.image_size()
    if found is None or found[0] <= 0 or found[1] <= 0:
        raise RecordError("the image size is unknown: the record has no global box [0, 0, W, H]; give the size")
    limits.check_size(int(found[0]), int(found[1]))
    return int(found[0]), int(found[1])


def report_from_record(
    record: Record, size: tuple[int, int] | None = None, limits: RecordLimits = DEFAULT_LIMITS
) -> RewardReport:
    """The reward report a record describes; ``size`` ``(W, H)`` overrides the global box's size."""
    width, height = _size_from(record, size, limits)
    if isinstance(record, TrainingRecord):
        entry = record.global_entry
        glob = (
            GlobalJudgement(score=None, parse_status="missing")
            if entry is None
            else GlobalJudgement(score=float(entry.score), parse_status="ok", raw_score=float(entry.score))
        )
        regions = tuple(
            RegionJudgement(
                region=Region(box=tuple(e.bbox), source="record", label=e.object),
                object_name=e.object,
                score=float(e.score),
                raw_score=float(e.score),
            )
            for e in record.vlm_rewards
            if e.object != GLOBAL_OBJECT
        )
        return RewardReport(
            prompt=record.prompt,
            width=width,
            height=height,
            global_judgement=glob,
            regions=regions,
            image_file=record.good_image_file,
        )
    g = record.global_layout_reward
    if g is None:
        glob = GlobalJudgement(score=None, parse_status="missing")
    else:
        glob = GlobalJudgement(
            score=g.global_layout_score,
            reason=g.reason or "",
            parse_status=_status(g.parse_status, g.global_layout_score),  # type: ignore[arg-type]
            raw_score=g.raw_score if g.raw_score is not None else g.global_layout_score,
        )
    regions = tuple(
        RegionJudgement(
            region=Region(box=tuple(r.bbox), source=r.source or "record", label=r.identified_object),
            object_name=r.identified_object,
            score=r.score,
            reason=r.reason or "",
            parse_status=_status(r.parse_status, r.score),  # type: ignore[arg-type]
            raw_score=r.raw_score if r.raw_score is not None else r.score,
        )
        for r in record.vlm_rewards
    )
    return RewardReport(
        prompt=record.prompt,
        width=width,
        height=height,
        global_judgement=glob,
        regions=regions,
        image_file=record.image_file,
    )


def training_record_from_report(report: RewardReport, image_file: str) -> TrainingRecord | None:
    """SRUM's training record for ``report``, or None when it is not trainable (global score unread).

    Regions whose score was not read are left out: the training format has no way to say "unknown".
    """
    if not report.trainable:
        return None
    entries = [
        TrainingEntry(
            object=GLOBAL_OBJECT, bbox=[0, 0, report.width, report.height], score=float(report.global_judgement.score)
        )
    ]
    entries += [
        TrainingEntry(object=j.object_name, bbox=list(j.region.box), score=float(j.score))
        for j in report.usable_regions
    ]
    return TrainingRecord(
        good_image_file=image_file, bad_image_file=image_file, prompt=report.prompt, vlm_rewards=tuple(entries)
    )


# --- files --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    """A line of a JSONL file that could not be read: its 1-based number and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class LoadResult:
    """The good records of a file, each with its 1-based line number, and every bad line."""

    records: tuple[tuple[int, Record], ...]
    bad_lines: tuple[BadLine, ...]

    @property
    def ok(self) -> bool:
        return not self.bad_lines

    def summary(self) -> str:
        return f"{len(self.records)} records read, {len(self.bad_lines)} bad lines" + (
            "".join(f"\n  {b}" for b in self.bad_lines)
        )


def load_records(path: str | os.PathLike[str], limits: RecordLimits = DEFAULT_LIMITS) -> LoadResult:
    """Read a SRUM JSONL file (either format, even mixed); blank lines are skipped, bad lines reported.

    A record over ``limits`` is a bad line (its reason names the limit).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"records file {path} does not exist")
    good: list[tuple[int, Record]] = []
    bad: list[BadLine] = []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append(BadLine(number, f"not valid JSON ({err.msg} at column {err.colno})"))
                continue
            except RecursionError:
                bad.append(BadLine(number, "the JSON is nested too deeply to be a SRUM record"))
                continue
            try:
                good.append((number, record_from_dict(data, limits)))
            except RecordError as err:
                bad.append(BadLine(number, str(err)))
    return LoadResult(records=tuple(good), bad_lines=tuple(bad))


def atomic_write_text(path: str | os.PathLike[str], text: str, overwrite: bool = False) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename (never half-written)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another path or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_jsonl(
    path: str | os.PathLike[str], records: Iterable[Record | dict[str, Any]], overwrite: bool = False
) -> Path:
    """Write records (or plain dicts) as JSON lines, atomically; refuses to overwrite unless ``overwrite``."""
    lines = [json.dumps(r if isinstance(r, dict) else r.to_dict(), ensure_ascii=False) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines), overwrite=overwrite)


def records_to_reports(
    records: Sequence[tuple[int, Record]],
    size: tuple[int, int] | None = None,
    limits: RecordLimits = DEFAULT_LIMITS,
) -> tuple[list[tuple[int, RewardReport]], list[BadLine]]:
    """Reports for records, with a :class:`BadLine` for each record whose size is unknown or over ``limits``."""
    reports, bad = [], []
    for number, record in records:
        try:
            reports.append((number, report_from_record(record, size, limits)))
        except RecordError as err:
            bad.append(BadLine(number, str(err)))
    return reports, bad
