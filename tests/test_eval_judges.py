"""The independent evaluation judges: referee, a local transformers VLM, decomposed questions, an OpenAI-compatible
endpoint (a stub HTTP server started here), each naming itself and its version."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from srum_core.eval_judges import (
    DecomposedJudge,
    EvalJudgeConfig,
    HolisticJudge,
    OpenAIAsker,
    build_judge,
    decompose_prompt,
    yes_from_logprobs,
    yes_from_text,
)
from srum_core.types import PromptItem


@pytest.fixture(scope="module")
def sandbox():
    from srum_core.backends.sandbox import SandboxBackend

    return SandboxBackend.from_random(seed=0, tiny=True)


class FixedAsker:
    """Answers from a table of question substrings → P(yes); records what it was asked."""

    name = "fixed"
    version = "v0"

    def __init__(self, answers: dict[str, float | None], default: float = 0.9):
        self.answers, self.default, self.asked = answers, default, []

    def yes_probability(self, images, questions):
        self.asked.extend(questions)
        out = []
        for q in questions:
            hit = [p for key, p in self.answers.items() if key in q]
            out.append(hit[0] if hit else self.default)
        return out


def test_prompts_decompose_into_object_count_attribute_and_relation_questions():
    kinds = [q.kind for q in decompose_prompt("three dogs and a red car")]
    assert kinds == ["object", "count", "object", "attribute"]
    texts = [q.text for q in decompose_prompt("a book on the left of a bird")]
    assert texts[-1] == "Is the book to the left of the bird? Answer Yes or No."
    attribute = decompose_prompt("a red car")[1]
    assert attribute.text.startswith("Is the car red?") and attribute.parent == 0
    # nothing the parser can read: one question about the whole prompt
    assert [q.kind for q in decompose_prompt("")] == ["whole"]


def test_decomposed_judge_scores_the_mean_keeps_every_answer_and_passes_only_when_all_do():
    asker = FixedAsker({"red": 0.2})
    judge = DecomposedJudge(asker)
    [result] = judge.judge([np.zeros((8, 8, 3), np.uint8)], [PromptItem("a red car next to a bench")])
    assert [q.kind for q in result.questions] == ["object", "attribute", "object", "relation"]
    assert result.score == pytest.approx((0.9 + 0.2 + 0.9 + 0.9) / 4)
    assert result.passed is False
    assert result.questions[1].p_yes == pytest.approx(0.2)
    assert judge.name == "decomposed:fixed" and judge.version.endswith("+v0")
    # one unanswered question leaves the image unscored, never a silent 0
    [failed] = DecomposedJudge(FixedAsker({"bench": None})).judge(
        [np.zeros((8, 8, 3), np.uint8)], [PromptItem("a red car next to a bench")]
    )
    assert failed.score is None and failed.passed is None and "failed" in failed.note


def test_referee_judge_on_the_sandbox_world(sandbox):
    judge = build_judge(EvalJudgeConfig(kind="referee"), sandbox)
    items = sandbox.prompts("eval", ["color"], 2, 0)
    images = [s.image for s in sandbox.generate([i.text for i in items], [0, 1], _gen())]
    results = judge.judge(images, items)
    assert all(r.score in (0.0, 1.0) and r.passed == bool(r.score) for r in results)
    assert judge.name.startswith("referee:") and len(judge.version) == 12
    with pytest.raises(ValueError, match="no referee"):
        build_judge(EvalJudgeConfig(kind="referee"), type("B", (), {"referee": lambda self: None})())


def _gen():
    from srum_core.config import GenerationConfig

    return GenerationConfig(steps=4, batch_size=4, mode="plain")


def test_configs_refuse_what_they_cannot_run():
    with pytest.raises(ValueError, match="needs judge.model"):
        EvalJudgeConfig(kind="vlm")
    with pytest.raises(ValueError, match="base_url"):
        EvalJudgeConfig(kind="openai", model="m")
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        EvalJudgeConfig(kind="openai", model="m", base_url="http://x", api_key_env="sk-secret value")
    with pytest.raises(ValueError, match="decompose"):
        EvalJudgeConfig(kind="referee", decompose=True)


def test_local_vlm_judge_is_p_yes_of_a_tiny_qwen25vl(tmp_path):
    from tests.conftest_pair import build_tiny_qwen25vl

    folder = build_tiny_qwen25vl(tmp_path / "qwen")
    config = EvalJudgeConfig(kind="vlm", model=str(folder), device="cpu")
    judge = build_judge(config)
    image = np.full((32, 32, 3), 120, np.uint8)
    [holistic] = judge.judge([image], [PromptItem("a red car")])
    assert 0.0 < holistic.score < 1.0 and holistic.questions[0].kind == "whole"
    assert judge.name == f"holistic:vlm:{folder}" and len(judge.version.split("+")[1]) == 12
    decomposed = build_judge(EvalJudgeConfig(kind="vlm", model=str(folder), device="cpu", decompose=True))
    [result] = decomposed.judge([image, image][:1], [PromptItem("a red car")])
    assert len(result.questions) == 2
    assert result.score == pytest.approx(np.mean([q.p_yes for q in result.questions]))
    # the same image and question give the same P(yes) alone or in a batch (left padding is masked)
    [again] = decomposed.judge([image], [PromptItem("a red car")])
    assert again.score == pytest.approx(result.score, abs=1e-5)


class _Stub(BaseHTTPRequestHandler):
    requests: list = []
    reply_logprobs = True

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        question = body["messages"][0]["content"][1]["text"]
        yes = 0.8 if "car" in question else 0.1
        choice = {"message": {"role": "assistant", "content": "Yes" if yes > 0.5 else "No"}}
        if type(self).reply_logprobs:
            choice["logprobs"] = {
                "content": [
                    {
                        "token": "Yes",
                        "logprob": math.log(yes),
                        "top_logprobs": [
                            {"token": "Yes", "logprob": math.log(yes)},
                            {"token": "No", "logprob": math.log(1 - yes)},
                            {"token": "Maybe", "logprob": math.log(0.01)},
                        ],
                    }
                ]
            }
        data = json.dumps({"model": "stub-vl-1", "system_fingerprint": "fp0", "choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def stub_server():
    _Stub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_endpoint_reads_p_yes_from_logprobs_and_keeps_the_key_out(stub_server, monkeypatch):
    monkeypatch.setenv("EVAL_JUDGE_KEY", "sk-test-123")
    config = EvalJudgeConfig(
        kind="openai", model="stub-vl", base_url=stub_server, api_key_env="EVAL_JUDGE_KEY", decompose=True
    )
    judge = build_judge(config)
    [result] = judge.judge([np.zeros((16, 16, 3), np.uint8)], [PromptItem("a red car and a bench")])
    probs = [q.p_yes for q in result.questions]
    assert probs[0] == pytest.approx(0.8) and probs[2] == pytest.approx(0.1)
    assert result.passed is False
    sent = _Stub.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test-123"
    assert sent["body"]["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert judge.version == "q1+stub-vl-1+fp0"
    described = json.dumps([config.to_dict(), judge.name, judge.version, result.to_dict()])
    assert "sk-test-123" not in described and "EVAL_JUDGE_KEY" in described


def test_openai_endpoint_without_logprobs_reads_the_text_answer(stub_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _Stub.reply_logprobs = False
    try:
        judge = HolisticJudge(OpenAIAsker(stub_server, "stub-vl"))
        [result] = judge.judge([np.zeros((16, 16, 3), np.uint8)], [PromptItem("a red car")])
    finally:
        _Stub.reply_logprobs = True
    assert result.score == 1.0 and result.passed is True
    assert _Stub.requests[0]["auth"] is None


def test_unreachable_endpoint_fails_loudly():
    asker = OpenAIAsker("http://127.0.0.1:9/v1", "m", timeout_s=2)
    with pytest.raises(RuntimeError, match="unreachable"):
        asker.yes_probability([np.zeros((4, 4, 3), np.uint8)], ["Is there a car?"])


def test_answer_parsers():
    assert yes_from_text(" Yes.") == 1.0 and yes_from_text("no, it is blue") == 0.0 and yes_from_text("?") is None
    top = [{"token": " yes", "logprob": math.log(0.3)}, {"token": "No", "logprob": math.log(0.1)}]
    assert yes_from_logprobs(top) == pytest.approx(0.75)
    assert yes_from_logprobs([{"token": "x", "logprob": 0.0}]) is None
