"""A tiny deterministic stand-in for a unified model, for round-engine tests.

``FakeBackend`` satisfies :class:`srum_core.protocol.UnifiedModel` with a few-thousand-parameter torch module:
16×16 RGB images, 4-pixel tokens (a 4×4 grid of 48-dim patches), rectified-flow generation with Euler steps
from per-sample seeded noise, and a judge made of fixed rules (brightness), so tests can predict its answers.
A prompt containing ``UNREADABLE`` makes the global judge fail to parse, as a real judge sometimes does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from srum_core.config import GenerationConfig, JudgeConfig
from srum_core.types import GlobalJudgement, PromptItem, Region, RegionJudgement, Sample

SIZE = 16
TOKEN = 4
GRID = SIZE // TOKEN
PATCH_DIM = TOKEN * TOKEN * 3
COND_DIM = 8
CATEGORIES = ("single", "color", "spatial")


def prompt_vector(prompt: str) -> torch.Tensor:
    """A fixed ``(COND_DIM,)`` embedding of the prompt text (hash-seeded), zeros for the empty prompt."""
    if not prompt:
        return torch.zeros(COND_DIM)
    digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    return torch.randn(COND_DIM, generator=torch.Generator().manual_seed(digest))


class TinyVelocityNet(torch.nn.Module):
    """``v(x_t, t, c)``: per-token MLP over ``(B, N, PATCH_DIM)`` patches; names its Linear layers like a trunk."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.to_in = torch.nn.Linear(PATCH_DIM + COND_DIM + 1, 32)
            self.hidden = torch.nn.Linear(32, 32)
            self.to_out = torch.nn.Linear(32, PATCH_DIM)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        t_feat = t.view(batch, 1, 1).expand(batch, tokens, 1)
        c_feat = cond.view(batch, 1, COND_DIM).expand(batch, tokens, COND_DIM)
        h = torch.nn.functional.gelu(self.to_in(torch.cat([x, c_feat, t_feat], dim=-1)))
        h = torch.nn.functional.gelu(self.hidden(h))
        return self.to_out(h)


def patches_to_image(x0: torch.Tensor) -> Image.Image:
    """``(N, PATCH_DIM)`` patches in roughly [-1, 1] → a 16×16 PIL RGB image."""
    x = x0.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    x = x.view(GRID, GRID, TOKEN, TOKEN, 3).permute(0, 2, 1, 3, 4).reshape(SIZE, SIZE, 3)
    return Image.fromarray(x.numpy(), mode="RGB")


class QuadrantBoxes:
    """A box source that proposes the four image quadrants, largest first (all equal)."""

    name = "quadrants"
    kind = "automatic"

    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        h = SIZE // 2
        boxes = [(0, 0, h, h), (h, 0, SIZE, h), (0, h, h, SIZE), (h, h, SIZE, SIZE)]
        return [Region(box=b, source=self.name) for b in boxes[:max_regions]]


class FakeBackend:
    """A tiny, deterministic :class:`~srum_core.protocol.UnifiedModel` for tests."""

    name = "fake"

    def __init__(self, seed: int = 0) -> None:
        self.net = TinyVelocityNet(seed)
        self.calls: dict[str, int] = {"generate": 0, "token_losses": 0}

    @property
    def image_size(self) -> tuple[int, int]:
        return (SIZE, SIZE)

    @property
    def token_size(self) -> int:
        return TOKEN

    def token_grid(self, width: int, height: int) -> tuple[int, int]:
        return (height // TOKEN, width // TOKEN)

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], seeds: Sequence[int], config: GenerationConfig, callback: Any = None
    ) -> list[Sample]:
        self.calls["generate"] += 1
        out = []
        for prompt, seed in zip(prompts, seeds):
            # Noise per sample from its own generator: independent of batch composition.
            x = torch.randn(1, GRID * GRID, PATCH_DIM, generator=torch.Generator().manual_seed(int(seed)))
            cond = prompt_vector(prompt).view(1, COND_DIM)
            steps = min(config.steps, 4)
            for i in range(steps):
                t = torch.full((1,), 1.0 - i / steps)
                v = self.net(x, t, cond)
                x = x - v / steps  # Euler from t=1 (noise) towards t=0 (data): dx/dt = v = ε − x0
            x0 = x[0]
            out.append(
                Sample(
                    prompt=prompt,
                    seed=int(seed),
                    image=patches_to_image(x0),
                    payload=x0.clone(),
                    settings={"steps": steps, "guidance": config.guidance},
                )
            )
        return out

    def judge_global(self, image: Any, prompt: str, config: JudgeConfig) -> GlobalJudgement:
        question = config.global_template.format(prompt=prompt)
        if "UNREADABLE" in prompt:
            return GlobalJudgement(score=None, raw_text="Score: ???", parse_status="failed", question=question)
        mean = float(np.asarray(image, dtype=np.float32).mean() / 255.0)
        score = float(np.clip(4.0 * (mean - 0.5), -1.0, 1.0))
        return GlobalJudgement(
            score=score, reason=f"brightness {mean:.3f}", raw_text=f"Score: {score}", question=question
        )

    def judge_regions(
        self, image: Any, prompt: str, regions: Sequence[Region], config: JudgeConfig
    ) -> list[RegionJudgement]:
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        out = []
        for region in regions:
            x1, y1, x2, y2 = region.clamped(SIZE, SIZE).box
            crop = pixels[y1:y2, x1:x2]
            if crop.size == 0:
                out.append(RegionJudgement(region=region, object_name="", score=None, parse_status="failed"))
                continue
            red = float(crop[..., 0].mean() - crop[..., 1:].mean())
            score = float(np.clip(4.0 * red, -1.0, 1.0))
            out.append(RegionJudgement(region=region, object_name="red thing" if red > 0 else "thing", score=score))
        return out

    def box_sources(self) -> dict[str, Any]:
        return {"quadrants": QuadrantBoxes()}

    def token_losses(
        self, samples: Sequence[Sample], generator: Any = None, timestep_shift: float = 1.0, cond_dropout: float = 0.0
    ) -> torch.Tensor:
        """``(B, N)`` squared velocity error at logit-normal timesteps (shifted), with prompt dropout."""
        self.calls["token_losses"] += 1
        x0 = torch.stack([s.payload for s in samples])
        batch = x0.shape[0]
        n = torch.randn(batch, generator=generator)
        t = torch.sigmoid(n)
        t = timestep_shift * t / (1 + (timestep_shift - 1) * t)
        eps = torch.randn(x0.shape, generator=generator)
        keep = (torch.rand(batch, generator=generator) >= cond_dropout).float().view(batch, 1)
        cond = torch.stack([prompt_vector(s.prompt) for s in samples]) * keep
        x_t = (1 - t.view(batch, 1, 1)) * x0 + t.view(batch, 1, 1) * eps
        v = self.net(x_t, t, cond)
        return ((v - (eps - x0)) ** 2).mean(dim=-1)

    def trainable_module(self) -> torch.nn.Module:
        return self.net

    def lora_target_modules(self) -> list[str]:
        return ["to_in", "hidden", "to_out"]

    # A tiny world: two prompt sets of numbered prompts per category, no referee.
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES

    def prompt_sets(self) -> tuple[str, ...]:
        return ("train", "val")

    def prompts(self, set_name: str, categories: Sequence[str] | None, n: int, seed: int) -> list[PromptItem]:
        if set_name not in self.prompt_sets():
            raise ValueError(f"prompt set {set_name!r} is unknown; choose train or val")
        cats = list(categories or CATEGORIES)
        return [
            PromptItem(text=f"{set_name} {cats[i % len(cats)]} prompt {seed}-{i}", category=cats[i % len(cats)])
            for i in range(n)
        ]

    def example_prompts(self, seed: int = 0) -> list[tuple[str, str]]:
        return [(category, f"a {category} example") for category in CATEGORIES]

    def referee(self) -> None:
        return None


#: Generation settings of the training and adapter tests.
TRAIN_GEN = GenerationConfig(steps=4, batch_size=8)


def own_samples(backend: FakeBackend, n: int = 4) -> list[Sample]:
    """``n`` of the backend's own samples to train on (prompts "a red circle 0..n-1", seeds 0..n-1)."""
    return backend.generate([f"a red circle {i}" for i in range(n)], list(range(n)), TRAIN_GEN)


def pixels(backend: FakeBackend, prompt: str = "a red circle", seed: int = 11) -> np.ndarray:
    """The ``(16, 16, 3)`` uint8 image the backend draws now for ``prompt`` at ``seed``."""
    return np.asarray(backend.generate([prompt], [seed], TRAIN_GEN)[0].image)
