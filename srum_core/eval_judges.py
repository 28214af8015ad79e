"""Evaluation judges: who scores a model's images when the number must not come from the model itself.

SRUM trains a model on rewards from its own understanding; measuring the result with that same understanding
invites reward hacking (the generator learns what its judge likes, not what the prompt asks). Papers report
T2I-CompBench and T2I-ReasonBench numbers from an *independent* judge instead (SRUM: Qwen2.5-VL). This module
is that judge, behind one small contract (:class:`EvalJudge`): ``judge(images, items) -> [JudgeResult]`` with a
score in [0, 1] (or None: the judge could not answer), a pass/fail, the questions it asked with their answers,
and a ``name`` and ``version`` that are stored beside every number it produces.

Kinds (:data:`JUDGE_KINDS`, configured by :class:`EvalJudgeConfig`):

- ``referee`` — the backend's own non-learned referee (the sandbox world's checker): score 1 or 0.
- ``vlm`` — a transformers vision-language model loaded locally (Qwen2.5-VL class, any
  ``AutoModelForImageTextToText`` with a chat template); the score is P("Yes") / (P("Yes") + P("No")) of the
  first answer token to "Does this image show <prompt>?" (VQAScore's form).
- ``openai`` — an OpenAI-compatible chat-completions endpoint (``base_url`` + ``model``); the API key is read
  from the environment variable ``api_key_env`` at call time and never stored in a config or a run folder.
  P("Yes") comes from the first token's ``top_logprobs`` when the server returns them, else the text answer
  counts 1 (yes) or 0 (no).
- ``decompose=True`` (with ``vlm`` or ``openai``) — TIFA/DSG-style: the prompt is split into atomic yes/no
  questions (objects, counts, attributes, relations; :func:`decompose_prompt`, from
  :mod:`srum_core.prompt_parser`), each answered as P("Yes"); the image's score is their mean, it passes when
  every question does (P > 0.5), and each question's answer is kept.

Nothing heavy is imported at module import; a local VLM loads when :func:`build_judge` is called.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .prompt_parser import ParsedObject, parse_objects, singularize_phrase
from .types import PromptItem

JUDGE_KINDS: tuple[str, ...] = ("referee", "vlm", "openai")
#: Bump when the questions a judge asks change: a score is comparable only with scores of the same version.
QUESTIONS_VERSION = "q1"
HOLISTIC_TEMPLATE = 'Does this image show "{prompt}"? Answer Yes or No.'


@dataclass(frozen=True)
class EvalJudgeConfig:
    """Which independent judge scores an evaluation.

    ``model``: a local folder or hub id (``vlm``) or the model name the endpoint serves (``openai``).
    ``base_url``: the endpoint up to ``/v1`` (``openai`` only), e.g. ``http://localhost:8000/v1``.
    ``api_key_env``: the *name* of the environment variable that holds the key (the key itself is never kept).
    ``decompose``: ask atomic questions (TIFA/DSG style) instead of one question about the whole prompt.
    ``threshold``: P("Yes") above which an answer (or a holistic score) counts as yes.
    """

    kind: str = "referee"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    decompose: bool = False
    threshold: float = 0.5
    timeout_s: float = 120.0
    device: str = "auto"

    def __post_init__(self) -> None:
        from .config import check_choice, check_float

        check_choice(self.kind, "judge.kind", JUDGE_KINDS)
        if self.kind in ("vlm", "openai") and not self.model:
            raise ValueError(f"judge.kind={self.kind!r} needs judge.model (a folder or hub id, or the served name)")
        if self.kind == "openai" and not self.base_url:
            raise ValueError("judge.kind='openai' needs judge.base_url, e.g. http://localhost:8000/v1")
        if self.kind == "referee" and self.decompose:
            raise ValueError("judge.decompose needs a question-answering judge (vlm or openai), not the referee")
        if not isinstance(self.api_key_env, str) or not self.api_key_env.replace("_", "").isalnum():
            raise ValueError(f"judge.api_key_env={self.api_key_env!r}: give the NAME of an environment variable")
        if not isinstance(self.decompose, bool):
            raise ValueError(f"judge.decompose={self.decompose!r}: give true or false")
        object.__setattr__(
            self,
            "threshold",
            check_float(
                self.threshold,
                "judge.threshold",
                0.0,
                1.0,
                "P(Yes) above which an answer counts as yes",
                lo_open=True,
                hi_open=True,
            ),
        )
        object.__setattr__(
            self,
            "timeout_s",
            check_float(self.timeout_s, "judge.timeout_s", 0.0, 3600.0, "seconds per request", lo_open=True),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Question:
    """One atomic yes/no question about a prompt (TIFA/DSG style). ``parent``: the index of the question it
    presupposes (an attribute presupposes its object), or None."""

    kind: str  # object | count | attribute | relation | whole
    text: str
    parent: int | None = None


@dataclass(frozen=True)
class QuestionResult:
    question: str
    kind: str
    p_yes: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JudgeResult:
    """An independent judge's verdict on one image. ``score`` in [0, 1] (None: no usable answer)."""

    score: float | None
    passed: bool | None
    questions: tuple[QuestionResult, ...] = ()
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "passed": self.passed,
            "questions": [q.to_dict() for q in self.questions],
            "note": self.note,
        }


class EvalJudge(Protocol):
    """The contract: a name and a version (stored with every number) and a batched verdict."""

    name: str
    version: str

    def judge(self, images: Sequence[Any], items: Sequence[PromptItem]) -> list[JudgeResult]: ...


class YesNoAsker(Protocol):
    """Answers yes/no questions about images: P("Yes") per (image, question), None where it could not answer."""

    name: str
    version: str

    def yes_probability(self, images: Sequence[Any], questions: Sequence[str]) -> list[float | None]: ...


# ----------------------------------------------------------------------------------------------------------
# Questions from a prompt

_RELATION_WORDS = {"left of": "to the left of", "right of": "to the right of"}


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def _plural(obj: ParsedObject) -> str:
    if obj.plural:
        return obj.name
    name = obj.name
    if name.endswith(("s", "x", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def decompose_prompt(prompt: str) -> list[Question]:
    """Atomic yes/no questions for ``prompt``: one per object (is it there), its count when more than one is
    asked for, each of its attributes (colour first), and each spatial relation. A prompt with no object the
    parser can find gets the one holistic question. Deterministic (rule-based, :mod:`srum_core.prompt_parser`)."""
    parsed = parse_objects(prompt)
    questions: list[Question] = []
    object_question: dict[int, int] = {}
    for index, obj in enumerate(parsed.objects):
        single = singularize_phrase(obj.name)
        object_question[index] = len(questions)
        questions.append(Question("object", f"Is there {_article(single)} {single} in the image? Answer Yes or No."))
        parent = object_question[index]
        if obj.count is not None and obj.count > 1:
            questions.append(
                Question(
                    "count", f"Are there exactly {obj.count} {_plural(obj)} in the image? Answer Yes or No.", parent
                )
            )
        for attribute in ([obj.color] if obj.color else []) + list(obj.attributes):
            subject = f"the {_plural(obj)}" if (obj.count or 1) > 1 or obj.plural else f"the {single}"
            verb = "are" if subject.endswith("s") and subject != f"the {single}" else "is"
            questions.append(
                Question("attribute", f"{verb.capitalize()} {subject} {attribute}? Answer Yes or No.", parent)
            )
    for rel in parsed.relations:
        a = singularize_phrase(parsed.objects[rel.subject].name)
        b = singularize_phrase(parsed.objects[rel.object].name)
        words = _RELATION_WORDS.get(rel.relation, rel.relation)
        questions.append(
            Question("relation", f"Is the {a} {words} the {b}? Answer Yes or No.", object_question.get(rel.subject))
        )
    if not questions:
        questions.append(Question("whole", HOLISTIC_TEMPLATE.format(prompt=prompt)))
    return questions


# ----------------------------------------------------------------------------------------------------------
# Judges


def _source_version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _referee_version(referee: Any, name: str) -> str:
    """A hash of the referee's source file: the module its name points to, else its class's module."""
    import importlib

    for module in (name.rsplit(".", 1)[0], type(referee).__module__):
        try:
            source = getattr(importlib.import_module(module), "__file__", None)
        except ImportError:
            continue
        if source:
            return _source_version(Path(source))
    return "unknown"


class RefereeJudge:
    """The backend's non-learned referee as an evaluation judge: score 1.0 (pass) or 0.0 (fail)."""

    def __init__(self, referee: Any):
        if referee is None:
            raise ValueError("this backend has no referee; choose a vlm or openai judge (--judge vlm --judge-model ID)")
        self.referee = referee
        ref_name = getattr(referee, "name", None) or type(referee).__name__
        self.name = f"referee:{ref_name}"
        self.version = _referee_version(referee, ref_name)

    def judge(self, images: Sequence[Any], items: Sequence[PromptItem]) -> list[JudgeResult]:
        from .evaluation import referee_passed

        out = []
        for image, item in zip(images, items):
            passed = referee_passed(self.referee, image, item)
            out.append(
                JudgeResult(
                    score=None if passed is None else float(passed),
                    passed=passed,
                    note="" if passed is not None else "the referee cannot judge this prompt",
                )
            )
        return out


class _AskerJudge:
    """A judge whose answers are P("Yes") from an asker; its name is ``{kind}:{asker}``."""

    kind = ""

    def __init__(self, asker: YesNoAsker, threshold: float = 0.5):
        self.asker = asker
        self.threshold = threshold
        self.name = f"{self.kind}:{asker.name}"

    @property
    def version(self) -> str:  # an endpoint names its model only once it has answered
        return f"{QUESTIONS_VERSION}+{self.asker.version}"


class HolisticJudge(_AskerJudge):
    """One question about the whole prompt; the score is its P("Yes") (VQAScore)."""

    kind = "holistic"

    def judge(self, images: Sequence[Any], items: Sequence[PromptItem]) -> list[JudgeResult]:
        questions = [HOLISTIC_TEMPLATE.format(prompt=item.text) for item in items]
        probs = self.asker.yes_probability(list(images), questions)
        return [
            JudgeResult(
                score=p, passed=None if p is None else p > self.threshold, questions=(QuestionResult(q, "whole", p),)
            )
            for q, p in zip(questions, probs)
        ]


class DecomposedJudge(_AskerJudge):
    """TIFA/DSG-style: atomic questions from the prompt, each P("Yes"); score = their mean; pass = all yes."""

    kind = "decomposed"

    def judge(self, images: Sequence[Any], items: Sequence[PromptItem]) -> list[JudgeResult]:
        per_image = [decompose_prompt(item.text) for item in items]
        flat_images = [image for image, qs in zip(images, per_image) for _ in qs]
        flat_questions = [q.text for qs in per_image for q in qs]
        probs = self.asker.yes_probability(flat_images, flat_questions)
        out, at = [], 0
        for qs in per_image:
            answers = probs[at : at + len(qs)]
            at += len(qs)
            results = tuple(QuestionResult(q.text, q.kind, p) for q, p in zip(qs, answers))
            known = [p for p in answers if p is not None]
            if len(known) < len(answers):  # a question without an answer leaves the image unscored
                out.append(JudgeResult(None, None, results, note="the judge failed to answer a question"))
                continue
            out.append(
                JudgeResult(
                    score=sum(known) / len(known), passed=all(p > self.threshold for p in known), questions=results
                )
            )
        return out


# ----------------------------------------------------------------------------------------------------------
# Askers: a local transformers VLM, an OpenAI-compatible endpoint


class LocalVlmAsker:
    """P("Yes") from a transformers vision-language model (srum_core.backends.pair's batched, left-padded judge)."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 8):
        import torch

        from .backends.pair import load_judge
        from .device import resolve_device
        from .vlm_judging import as_pil

        self._as_pil = as_pil
        dev = resolve_device(device)
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        self.vlm = load_judge(model, dtype, judge_batch_size=batch_size)
        self.vlm.model.to(dev)
        self.name = f"vlm:{model}"
        self.version = _model_version(model)

    def yes_probability(self, images: Sequence[Any], questions: Sequence[str]) -> list[float | None]:
        if not images:
            return []
        return [float(p) for p in self.vlm.yes_probability([self._as_pil(i) for i in images], list(questions))]


def _model_version(model: str) -> str:
    """A short hash of the model's config.json and weight index (so a changed checkpoint changes the version)."""
    from transformers.utils import cached_file

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors.index.json", "model.safetensors"):
        path = cached_file(model, name, _raise_exceptions_for_missing_entries=False)
        if path and (name != "model.safetensors" or os.path.getsize(path) < 64 * 2**20):
            digest.update(Path(path).read_bytes())
        elif path:
            digest.update(str(os.path.getsize(path)).encode())
    return digest.hexdigest()[:12]


def _png_data_url(image: Any) -> str:
    from .vlm_judging import as_pil

    buffer = io.BytesIO()
    as_pil(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def yes_from_logprobs(top: Sequence[dict[str, Any]]) -> float | None:
    """P(yes) / (P(yes) + P(no)) from one token's ``top_logprobs`` (``[{"token", "logprob"}, ...]``)."""
    yes = sum(math.exp(t["logprob"]) for t in top if str(t.get("token", "")).strip().lower() == "yes")
    no = sum(math.exp(t["logprob"]) for t in top if str(t.get("token", "")).strip().lower() == "no")
    return yes / (yes + no) if yes + no > 0 else None


def yes_from_text(text: str) -> float | None:
    """1.0 for an answer that starts with yes, 0.0 for no, None otherwise."""
    word = text.strip().lower().lstrip("\"'*").split(maxsplit=1)
    if not word:
        return None
    head = word[0].rstrip(".,!:;\"'*")
    return 1.0 if head == "yes" else 0.0 if head == "no" else None


@dataclass
class OpenAIAsker:
    """Yes/no answers from an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, SGLang, llama.cpp, ...).

    The key comes from ``os.environ[api_key_env]`` at each request (no key: no Authorization header); it is never
    stored on the object or written anywhere. ``version`` is the model id the server reports (plus its
    ``system_fingerprint`` where it gives one), set after the first answer.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    name: str = field(init=False)
    version: str = field(init=False, default="unqueried")

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.name = f"openai:{self.model}@{self.base_url}"

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (user's URL)
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            raise RuntimeError(
                f"judge endpoint {self.base_url} answered HTTP {err.code}: "
                f"{err.read()[:200].decode('utf-8', 'replace')}"
            ) from None
        except urllib.error.URLError as err:
            raise RuntimeError(f"judge endpoint {self.base_url} unreachable: {err.reason}") from None

    def ask(self, image: Any, question: str) -> float | None:
        payload = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": _png_data_url(image)}},
                        {"type": "text", "text": question},
                    ],
                }
            ],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
        }
        data = self._post(payload)
        self.version = str(data.get("model", self.model)) + (
            f"+{data['system_fingerprint']}" if data.get("system_fingerprint") else ""
        )
        choice = (data.get("choices") or [{}])[0]
        content = (choice.get("logprobs") or {}).get("content") or []
        if content and content[0].get("top_logprobs"):
            p = yes_from_logprobs(content[0]["top_logprobs"])
            if p is not None:
                return p
        return yes_from_text(str((choice.get("message") or {}).get("content") or ""))

    def yes_probability(self, images: Sequence[Any], questions: Sequence[str]) -> list[float | None]:
        return [self.ask(image, question) for image, question in zip(images, questions)]


def build_judge(config: EvalJudgeConfig, backend: Any = None, asker: YesNoAsker | None = None) -> EvalJudge:
    """The judge ``config`` describes (``backend``: for the referee; ``asker``: a ready asker, e.g. a test's)."""
    if config.kind == "referee":
        return RefereeJudge(backend.referee() if backend is not None else None)
    if asker is None:
        if config.kind == "vlm":
            asker = LocalVlmAsker(str(config.model), device=config.device)
        else:
            asker = OpenAIAsker(str(config.base_url), str(config.model), config.api_key_env, config.timeout_s)
    return (DecomposedJudge if config.decompose else HolisticJudge)(asker, config.threshold)
