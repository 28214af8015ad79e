"""Janus-Pro (DeepSeek) through transformers as a SRUM backend: generate, self-judge, train on own VQ codes.

Janus-Pro is an autoregressive unified model: one Llama language model reads images through a SigLIP vision
tower (understanding) and writes images as a 24×24 grid of VQ codes that a VQ decoder turns into 384² pixels
(generation). SRUM on it (SRUM_SPEC §1.7, token form): sample codes with classifier-free guidance, let the same
model judge the decoded image, area-average the reward map onto the 24×24 grid (16 px per token) and weight the
per-token cross-entropy of the sampled codes, ``L = Σ_i (r_i + λ)·CE_i / N``.

Generation runs our own sampling loop on the model's own modules (``language_model``, ``generation_head``,
``generation_embeddings``/``generation_aligner``, ``vqmodel``) instead of ``generate(generation_mode="image")``
because the upstream loop draws all samples from one global RNG (no per-sample seeds) and ignores left padding
in position ids; ours draws each sample's uniforms from its own seeded CPU generator (same seed → same codes,
on CPU and GPU alike, whatever else is in the batch) and derives positions from the attention mask.

Judging uses the understanding path of the same weights, two ways (``judge=``):

- ``"likelihood"``: the next-token probabilities of "Yes" and "No" after a yes/no question (the JudgeConfig
  templates); ``score = 2·P(Yes | Yes or No) − 1``. Steady, no parsing, recommended for small models.
- ``"rubric"``: SRUM's text rubric (SRUM_SPEC §1.4), greedy decoding, parsed with
  :func:`srum_core.parsing.parse_global_response` / :func:`~srum_core.parsing.parse_region_response`; the raw
  text is kept and an unreadable answer stays a failure.

Nothing heavy is imported at module import; weights load only in :func:`load_janus`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import GenerationConfig, JudgeConfig
from ..device import default_dtype, resolve_device
from ..prompt_sets import T2ICompBenchWorld
from ..protocol import BoxSource, ProgressCallback, ProgressEvent
from ..templates import fill_template
from ..types import GlobalJudgement, Region, RegionJudgement, Sample
from ..vlm_judging import as_pil as _as_pil
from ..vlm_judging import crop as _crop
from ..vlm_judging import likelihood_global as _likelihood_global
from ..vlm_judging import likelihood_region as _likelihood_region

logger = logging.getLogger(__name__)

#: Short names the CLI and the UI accept for ``--backend``.
BACKEND_ALIASES: dict[str, str] = {
    "janus-pro-1b": "deepseek-community/Janus-Pro-1B",
    "janus-pro-7b": "deepseek-community/Janus-Pro-7B",
}
JUDGES: tuple[str, ...] = ("likelihood", "rubric")

#: Language-model parameters of the published checkpoints, for the CPU warning when no config is on disk.
_KNOWN_LM_PARAMS: dict[str, float] = {
    "deepseek-community/Janus-Pro-1B": 1.5e9,
    "deepseek-community/Janus-Pro-7B": 6.9e9,
}
#: Assumed CPU memory bandwidth for the warning's estimate: decoding one token reads every weight once.
_CPU_BANDWIDTH_BYTES_S = 20e9

GLOBAL_RUBRIC = (
    'This image was generated for the prompt: "{prompt}".\n'
    "Judge only whether the arrangement of the elements in the image matches the content and spatial layout "
    "that the prompt asks for.\n"
    "Rubric:\n"
    "1.0: the layout matches the prompt perfectly.\n"
    "0.5 to 0.9: mostly right, with small deviations.\n"
    "-0.4 to 0.4: neutral, or the prompt makes no layout demand.\n"
    "-0.9 to -0.5: the layout is wrong.\n"
    "-1.0: the layout contradicts the prompt.\n"
    "Answer in exactly two lines:\n"
    "Score: <a number between -1 and 1>\n"
    "Reason: <one sentence>"
)
REGION_RUBRIC = (
    'This image was generated for the prompt: "{prompt}". {view_note}\n\n'
    "{regions}\n\n"
    "For each region, name the object it shows and score how relevant it is to the prompt together with its "
    "visual quality.\n"
    "Rubric:\n"
    "1.0: exactly what the prompt asks for, and flawless.\n"
    "0.5 to 0.9: relevant, with minor flaws.\n"
    "-0.4 to 0.4: neutral or background.\n"
    "-0.9 to -0.5: distracting or badly broken.\n"
    "-1.0: contradicts the prompt.\n"
    "Answer for every region with four lines:\n"
    "Region ID: <id>\n"
    "Identified Object: <name>\n"
    "Score: <a number between -1 and 1>\n"
    "Reason: <one sentence>"
)
_VIEW_NOTES = {
    "coords": "Each region is given by its bounding box [x1, y1, x2, y2] in coordinates normalised to 0..1.",
    "boxes": "Each region is drawn on the image as a numbered box; the number is its Region ID.",
    "crop": "The image shows only the region to judge.",
}
_BOX_COLOURS = ((255, 0, 0), (0, 200, 0), (0, 90, 255), (255, 200, 0), (255, 0, 255), (0, 220, 220))

# (model id, revision, device, dtype) → (model, processor); a backend wraps a cached pair.
_LOADED: dict[tuple[str, str | None, str, str], tuple[Any, Any]] = {}


def resolve_model_id(name: str) -> str:
    """``janus-pro-1b`` → ``deepseek-community/Janus-Pro-1B``; anything else (hub id or path) unchanged."""
    return BACKEND_ALIASES.get(name.strip().lower(), name)


def clear_janus_cache() -> None:
    """Forget every loaded Janus model (the next :func:`load_janus` reads the weights again)."""
    _LOADED.clear()


def _lm_params_from_config(path: Path) -> tuple[float, int] | None:
    """(language-model parameters, image tokens) estimated from a local ``config.json``; None if unreadable."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text = config.get("text_config") or {}
    hidden = int(text.get("hidden_size", 0))
    layers = int(text.get("num_hidden_layers", 0))
    inter = int(text.get("intermediate_size", 4 * hidden))
    vocab = int(text.get("vocab_size", 0))
    n_image = int((config.get("vision_config") or {}).get("num_image_tokens", 576))
    # Per layer: 4·h² attention + 3·h·i gated MLP; plus input and output embeddings.
    return float(layers * (4 * hidden * hidden + 3 * hidden * inter) + 2 * vocab * hidden), n_image


def janus_cpu_warning(model_id: str, device: str = "auto") -> str | None:
    """What generating with ``model_id`` costs on CPU, or None when it is cheap or a GPU will be used.

    The estimate is memory-bound: every sampled image token (576 for 384², each for the conditional and the
    unconditional stream at once) reads all language-model weights in fp32 once, at an assumed 20 GB/s.
    """
    if resolve_device(device).type == "cuda":
        return None
    model_id = resolve_model_id(model_id)
    estimate = _lm_params_from_config(Path(model_id)) if os.path.isdir(model_id) else None
    if estimate is None:
        params = _KNOWN_LM_PARAMS.get(model_id)
        if params is None and "janus" not in model_id.lower():
            return None
        estimate = (params or _KNOWN_LM_PARAMS["deepseek-community/Janus-Pro-1B"], 576)
    params, n_tokens = estimate
    if params < 5e7:
        return None
    seconds = params * 4 * n_tokens / _CPU_BANDWIDTH_BYTES_S
    ram_gb = params * 4 / 1e9 * 1.4  # weights plus vision tower, VQ decoder and activations
    return (
        f"{model_id} on CPU: about {params / 1e9:.1f}B language-model parameters in fp32 need ~{ram_gb:.0f} GB of RAM, "
        f"and each image is {n_tokens} sequential decoding steps, roughly {seconds / 60:.0f} minutes per image "
        "(judging adds more). Use a CUDA GPU (bf16) for real runs, or a tiny model to try the workflow."
    )


def load_janus(
    model_id_or_path: str,
    revision: str | None = None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    *,
    use_cache: bool = True,
    **options: Any,
) -> JanusBackend:
    """Load a Janus(-Pro) checkpoint (hub id, alias or local folder) and wrap it as a :class:`JanusBackend`.

    bf16 on CUDA, fp32 elsewhere, unless ``dtype`` says otherwise. Weights are loaded once per
    (id, revision, device, dtype) and shared by every backend built from them — including any LoRA adapter a
    training round injects; pass ``use_cache=False`` for a private copy. ``options`` go to :class:`JanusBackend`.
    No remote code is ever executed: the classes are transformers' own.
    """
    from transformers import JanusForConditionalGeneration, JanusProcessor

    model_id = resolve_model_id(model_id_or_path)
    dev = resolve_device(device)
    dt = dtype or default_dtype(dev)
    key = (model_id, revision, str(dev), str(dt))
    pair = _LOADED.get(key) if use_cache else None
    if pair is None:
        try:
            model = JanusForConditionalGeneration.from_pretrained(model_id, revision=revision, dtype=dt)
            processor = JanusProcessor.from_pretrained(model_id, revision=revision)
        except OSError as err:
            raise OSError(
                f"could not load Janus model {model_id!r}: {err}. Give a local folder with config.json, "
                "model.safetensors and the processor files, or a hub id that is downloaded (unset HF_HUB_OFFLINE "
                "to download)."
            ) from err
        model.to(dev).eval()
        model.requires_grad_(False)  # training attaches adapters; the base stays frozen
        pair = (model, processor)
        if use_cache:
            _LOADED[key] = pair
        logger.info("loaded %s on %s (%s)", model_id, dev, dt)
    return JanusBackend(pair[0], pair[1], model_id=model_id, **options)


class JanusBackend(T2ICompBenchWorld):
    """A loaded Janus model behind :class:`srum_core.protocol.UnifiedModel`; its prompts are T2I-CompBench's.

    ``judge``: ``"likelihood"`` or ``"rubric"`` (module docstring). ``temperature``: sampling temperature of
    image codes (1.0 as Janus-Pro). ``cond_dropout``: fraction of training samples whose prompt is dropped
    (SRUM keeps 10% so CFG keeps working). ``max_new_tokens``: length limit of rubric answers.
    Box sources: ``grounding_model`` (an OWLv2 id/path) and ``sam_model`` (a SAM id/path) switch them on.
    ``kv_cache``: ``"static"`` (keys and values preallocated for prompt + image tokens) or ``"dynamic"``
    (grown every step); both give the same codes.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        model_id: str = "janus",
        *,
        judge: str = "likelihood",
        temperature: float = 1.0,
        cond_dropout: float = 0.1,
        max_new_tokens: int = 160,
        judge_batch_size: int = 8,
        grounding_model: str | None = None,
        grounding_threshold: float = 0.1,
        sam_model: str | None = None,
        sam_points_per_side: int = 16,
        use_segmenter: bool = True,
        kv_cache: str = "static",
    ):
        if judge not in JUDGES:
            raise ValueError(f"judge={judge!r}: choose one of {', '.join(JUDGES)}")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature}: use a positive sampling temperature (Janus-Pro uses 1.0)")
        if not 0.0 <= cond_dropout < 1.0:
            raise ValueError(f"cond_dropout={cond_dropout}: use a fraction in [0, 1) (SRUM keeps 0.1)")
        if kv_cache not in ("static", "dynamic"):
            raise ValueError(f"kv_cache={kv_cache!r}: choose 'static' (preallocated, default) or 'dynamic'")
        if processor.chat_template is None:
            raise ValueError(
                f"the processor of {model_id!r} has no chat template; Janus prompts are built with it — save the "
                "processor with its chat_template.jinja"
            )
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model_id = model_id
        self.name = f"janus:{model_id}"
        self.judge = judge
        self.temperature = float(temperature)
        self.cond_dropout = float(cond_dropout)
        self.max_new_tokens = int(max_new_tokens)
        self.judge_batch_size = int(judge_batch_size)
        self.grounding_model = grounding_model
        self.grounding_threshold = grounding_threshold
        self.sam_model = sam_model
        self.sam_points_per_side = sam_points_per_side
        self.use_segmenter = use_segmenter
        self.kv_cache = kv_cache
        self._box_sources: dict[str, BoxSource] | None = None

        vq = model.config.vq_config
        self._grid = int(vq.num_patches)
        # The VQ decoder upsamples ×2 per resolution level after the first (Janus-Pro: 5 levels → 16 px).
        self._token_size = 2 ** (len(vq.channel_multiplier) - 1)
        self._n_image_tokens = int(model.model.vision_model.config.num_image_tokens)
        if self._grid * self._grid != self._n_image_tokens:
            raise ValueError(
                f"Janus config mismatch: VQ grid {self._grid}² ≠ {self._n_image_tokens} image tokens; the vision "
                "image_size / patch_size must give the same grid as the VQ model"
            )
        tok = self.tokenizer
        self._pad_id = tok.pad_token_id
        if self._pad_id is None:
            raise ValueError(
                "the Janus tokenizer has no pad token; set tokenizer.pad_token (Janus-Pro uses <｜▁pad▁｜>)"
            )
        self._bos_id = tok.bos_token_id
        self._boi_id = tok.convert_tokens_to_ids(processor.image_start_token)
        self._yes_ids, self._no_ids = self._answer_token_ids()

    # ------------------------------------------------------------------------------------------------------
    # Geometry

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def image_size(self) -> tuple[int, int]:
        side = self._grid * self._token_size
        return side, side

    @property
    def token_size(self) -> int:
        return self._token_size

    def token_grid(self, width: int, height: int) -> tuple[int, int]:
        if (width, height) != self.image_size:
            raise ValueError(
                f"Janus generates {self.image_size[0]}×{self.image_size[1]} images only; got {width}×{height}"
            )
        return self._grid, self._grid

    # ------------------------------------------------------------------------------------------------------
    # Prompts

    def _chat(self, text: str, with_image: bool) -> str:
        content: list[dict[str, str]] = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": text})
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)

    def _generation_inputs(self, prompts: Sequence[str], drop: Sequence[bool] | None = None) -> tuple[Any, Any]:
        """``(input_ids, attention_mask)`` (B, L), left-padded, each ending in the begin-of-image token.

        Rows with ``drop[b]`` become the unconditional prompt: every token except BOS and BOI replaced by the
        pad token (as Janus-Pro builds its CFG branch), still attended to.
        """
        texts = [self._chat(p, with_image=False) for p in prompts]
        enc = self.processor(text=texts, generation_mode="image", padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if drop is not None and any(drop):
            rows = torch.tensor([bool(d) for d in drop])
            ids = ids.clone()
            ids[rows] = self._unconditional(ids[rows], mask[rows])
        return ids.to(self.device), mask.to(self.device)

    def _unconditional(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = (ids == self._boi_id) | (mask == 0)
        if self._bos_id is not None:
            keep |= ids == self._bos_id
        return torch.where(keep, ids, torch.full_like(ids, self._pad_id))

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        return (mask.long().cumsum(-1) - 1).clamp(min=0)

    # ------------------------------------------------------------------------------------------------------
    # Generation

    def _check_guidance(self, guidance: float) -> None:
        if not guidance > 1.0:
            raise ValueError(
                f"guidance={guidance}: Janus needs classifier-free guidance > 1.0 (transformers' Janus image "
                "generation breaks at 1.0 because it doubles the batch without a guidance step); Janus-Pro uses 5"
            )

    @torch.no_grad()
    def sample_codes(
        self, prompts: Sequence[str], seeds: Sequence[int], guidance: float, temperature: float | None = None
    ) -> torch.Tensor:
        """Sample image codes with CFG: ``(B, N)`` int64 on the model's device, row-major over the token grid.

        Each row's uniforms come from ``torch.Generator().manual_seed(seed)`` on the CPU, and a code is drawn
        by inverting the CDF of ``softmax((u + g·(c − u)) / T)`` (logits ``c`` conditional, ``u`` unconditional).
        """
        self._check_guidance(guidance)
        temperature = self.temperature if temperature is None else float(temperature)
        b = len(prompts)
        n = self._n_image_tokens
        uniforms = torch.stack([torch.rand(n, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        uniforms = uniforms.to(self.device, torch.float32)

        ids, mask = self._generation_inputs(prompts)
        ids = torch.cat([ids, self._unconditional(ids, mask)])  # (2B, L): conditional rows, then unconditional
        mask = torch.cat([mask, mask])
        lm = self.model.model.language_model
        head = self.model.model.generation_head
        # A static cache, allocated once for prompt + image tokens (as transformers' own image generation does):
        # a growing cache re-allocates every layer's keys and values at every one of the N steps.
        from transformers import DynamicCache, StaticCache

        prompt_len = ids.shape[1]
        if self.kv_cache == "static":
            cache = StaticCache(config=lm.config, max_cache_len=prompt_len + n)
        else:
            cache = DynamicCache(config=lm.config)
        embeds = self.model.get_input_embeddings()(ids)
        positions = self._positions(mask)
        cache_position = torch.arange(prompt_len, device=self.device)
        codes = torch.empty(b, n, dtype=torch.long, device=self.device)
        for i in range(n):
            out = lm(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                cache_position=cache_position,
                use_cache=True,
            )
            logits = head(out.last_hidden_state[:, -1]).float()
            cond, uncond = logits[:b], logits[b:]
            guided = uncond + guidance * (cond - uncond)
            cdf = torch.softmax(guided / temperature, dim=-1).cumsum(-1)
            target = uniforms[:, i : i + 1] * cdf[:, -1:]
            nxt = torch.searchsorted(cdf, target).squeeze(-1).clamp(max=cdf.shape[-1] - 1)
            codes[:, i] = nxt
            embeds = self.model.prepare_embeddings_for_image_generation(torch.cat([nxt, nxt])[:, None])
            mask = torch.cat([mask, mask.new_ones(2 * b, 1)], dim=1)
            positions = positions[:, -1:] + 1
            cache_position = cache_position[-1:] + 1
        return codes

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> np.ndarray:
        """``(B, N)`` codes → ``(B, H, W, 3)`` uint8; the decoder output is clamped to [−1, 1] first."""
        pixels = self.model.decode_image_tokens(codes.to(self.device)).float().clamp(-1.0, 1.0)
        return ((pixels + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        config: GenerationConfig,
        callback: ProgressCallback | None = None,
    ) -> list[Sample]:
        """One image per (prompt, seed). ``config.steps`` does not apply (Janus samples its N codes one by one).

        ``Sample.payload`` is the ``(rows, cols)`` int64 code grid on the CPU.
        """
        from PIL import Image

        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        self._check_guidance(config.guidance)
        samples: list[Sample] = []
        total = len(prompts)
        for start in range(0, total, config.batch_size):
            batch_prompts = list(prompts[start : start + config.batch_size])
            batch_seeds = [int(s) for s in seeds[start : start + config.batch_size]]
            codes = self.sample_codes(batch_prompts, batch_seeds, config.guidance)
            images = self.decode_codes(codes)
            for prompt, seed, code, pixels in zip(batch_prompts, batch_seeds, codes.cpu(), images):
                samples.append(
                    Sample(
                        prompt=prompt,
                        seed=seed,
                        image=Image.fromarray(pixels),
                        payload=code.view(self._grid, self._grid).clone(),
                        settings={
                            "backend": self.name,
                            "guidance": float(config.guidance),
                            "temperature": self.temperature,
                            "sampler": "srum-cfg-inverse-cdf",
                        },
                    )
                )
            if callback is not None:
                callback(ProgressEvent("generate", len(samples), total, preview=samples[-1].image))
        return samples

    # ------------------------------------------------------------------------------------------------------
    # Self-judging

    def _answer_token_ids(self) -> tuple[list[int], list[int]]:
        def first_ids(words: Sequence[str]) -> list[int]:
            found: list[int] = []
            for word in words:
                ids = self.tokenizer.encode(word, add_special_tokens=False)
                if ids and ids[0] not in found:
                    found.append(ids[0])
            return found

        yes = first_ids([" Yes", "Yes", " yes", "yes"])
        no = first_ids([" No", "No", " no", "no"])
        # A first token both words share (e.g. a bare space) says nothing about the answer.
        shared = set(yes) & set(no)
        yes, no = [i for i in yes if i not in shared], [i for i in no if i not in shared]
        if not yes or not no:
            raise ValueError(
                "the tokenizer does not separate 'Yes' from 'No' in its first token; use judge='rubric' with it"
            )
        return yes, no

    def _understanding_inputs(self, images: Sequence[Any], questions: Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [self._chat(q, with_image=True) for q in questions]
        enc = self.processor(text=texts, images=list(images), padding=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in enc.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    @torch.no_grad()
    def yes_probability(self, images: Sequence[Any], questions: Sequence[str]) -> list[float]:
        """``P(Yes) / (P(Yes) + P(No))`` of the next answer token, per (image, question)."""
        probs: list[float] = []
        for start in range(0, len(images), self.judge_batch_size):
            inputs = self._understanding_inputs(
                images[start : start + self.judge_batch_size], questions[start : start + self.judge_batch_size]
            )
            inputs["position_ids"] = self._positions(inputs["attention_mask"])
            logits = self.model(**inputs, logits_to_keep=1).logits[:, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            lp_yes = torch.logsumexp(logp[:, self._yes_ids], dim=-1)
            lp_no = torch.logsumexp(logp[:, self._no_ids], dim=-1)
            probs.extend(torch.sigmoid(lp_yes - lp_no).tolist())
        return probs

    @torch.no_grad()
    def answer(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]:
        """Greedy answers (special tokens removed), one per (image, question)."""
        answers: list[str] = []
        for start in range(0, len(images), self.judge_batch_size):
            inputs = self._understanding_inputs(
                images[start : start + self.judge_batch_size], questions[start : start + self.judge_batch_size]
            )
            out = self.model.generate(
                **inputs,
                generation_mode="text",
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self._pad_id,
            )
            new = out[:, inputs["input_ids"].shape[1] :]
            answers.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return answers

    def judge_global(self, image: Any, prompt: str, config: JudgeConfig) -> GlobalJudgement:
        image = _as_pil(image)
        if self.judge == "likelihood":
            question = fill_template(config.global_template, prompt=prompt)
            p = self.yes_probability([image], [question])[0]
            return _likelihood_global(p, question)
        from ..parsing import parse_global_response

        question = fill_template(GLOBAL_RUBRIC, prompt=prompt)
        return parse_global_response(self.answer([image], [question])[0], question=question)

    def judge_regions(
        self, image: Any, prompt: str, regions: Sequence[Region], config: JudgeConfig
    ) -> list[RegionJudgement]:
        """One judgement per region, in order; regions are shown as ``config.region_view`` says."""
        image = _as_pil(image)
        width, height = image.size
        regions = [r.clamped(width, height) for r in regions]
        if not regions:
            return []
        view = config.region_view
        if self.judge == "likelihood":
            shown, questions = [], []
            boxed = draw_numbered_boxes(image, regions) if view == "boxes" else None
            for k, region in enumerate(regions, start=1):
                where = _region_words(region, k, view, width, height)
                questions.append(
                    fill_template(
                        config.region_template, prompt=prompt, region=where, object=region.label or "whatever it shows"
                    )
                )
                shown.append(_crop(image, region) if view == "crop" else (boxed if view == "boxes" else image))
            probs = self.yes_probability(shown, questions)
            return [_likelihood_region(r, p, q) for r, p, q in zip(regions, probs, questions)]

        from ..parsing import parse_region_response

        note = _VIEW_NOTES[view]
        if view == "crop":
            # One request per crop, each listing its single region as Region ID 1.
            questions = [
                fill_template(
                    REGION_RUBRIC, prompt=prompt, view_note=note, regions=_region_listing([r], view, width, height)
                )
                for r in regions
            ]
            texts = self.answer([_crop(image, r) for r in regions], questions)
            return [parse_region_response(t, [r], question=q)[0] for t, r, q in zip(texts, regions, questions)]
        question = fill_template(
            REGION_RUBRIC, prompt=prompt, view_note=note, regions=_region_listing(regions, view, width, height)
        )
        shown = draw_numbered_boxes(image, regions) if view == "boxes" else image
        return parse_region_response(self.answer([shown], [question])[0], regions, question=question)

    # ------------------------------------------------------------------------------------------------------
    # Regions

    def box_sources(self) -> dict[str, BoxSource]:
        """``grounding`` (OWLv2, if ``grounding_model`` is set), ``sam`` (if ``sam_model`` is set) and
        ``segmenter`` (the model-free background segmenter), in that order; models load on first use."""
        if self._box_sources is None:
            sources: dict[str, BoxSource] = {}
            device = str(self.device.type)
            if self.grounding_model:
                from ..boxes.owlv2 import Owlv2Grounding

                sources["grounding"] = Owlv2Grounding(self.grounding_model, self.grounding_threshold, device)
            if self.sam_model:
                from ..boxes.sam import SamAutomaticBoxes

                sources["sam"] = SamAutomaticBoxes(self.sam_model, self.sam_points_per_side, device)
            if self.use_segmenter:
                from ..boxes.segmenter import SegmenterBoxes

                sources["segmenter"] = SegmenterBoxes()
            self._box_sources = sources
        return dict(self._box_sources)

    # ------------------------------------------------------------------------------------------------------
    # Training

    def token_losses(self, samples: Sequence[Sample], generator: Any = None, cond_dropout: float | None = None) -> Any:
        """``(B, N)`` cross-entropy of each sample's own codes under teacher forcing, with grad.

        Conditioned on the sample's prompt; each prompt is dropped (→ the unconditional prompt) with
        probability ``cond_dropout`` (default: the backend's, 0.1), drawn from ``generator`` (a CPU
        ``torch.Generator``) so the same seed drops the same prompts. Position ``L − 1`` (the begin-of-image
        token) predicts code 0, code ``i − 1`` predicts code ``i``.
        """
        p_drop = self.cond_dropout if cond_dropout is None else float(cond_dropout)
        codes = torch.stack([torch.as_tensor(s.payload).reshape(-1) for s in samples]).to(self.device)
        if codes.shape[1] != self._n_image_tokens:
            raise ValueError(f"sample payloads hold {codes.shape[1]} codes; this model expects {self._n_image_tokens}")
        drop = (torch.rand(len(samples), generator=generator) < p_drop).tolist() if p_drop > 0 else None
        ids, mask = self._generation_inputs([s.prompt for s in samples], drop)
        text = self.model.get_input_embeddings()(ids)
        image = self.model.prepare_embeddings_for_image_generation(codes[:, :-1])
        embeds = torch.cat([text, image.to(text.dtype)], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(codes.shape[0], codes.shape[1] - 1)], dim=1)
        hidden = self.model.model.language_model(
            inputs_embeds=embeds, attention_mask=full_mask, position_ids=self._positions(full_mask), use_cache=False
        ).last_hidden_state
        length = ids.shape[1]
        logits = self.model.model.generation_head(hidden[:, length - 1 : length - 1 + codes.shape[1]]).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1), reduction="none")
        return ce.view(codes.shape)

    def trainable_module(self) -> Any:
        """The whole ``JanusForConditionalGeneration``; :meth:`lora_target_modules` picks its language model."""
        return self.model

    def lora_target_modules(self) -> str:
        """A peft regex over the language model's attention and MLP projections only.

        The SigLIP vision tower, both aligners, the VQ model and the generation head/embeddings get no
        adapter, so understanding drift after training comes from the shared language model alone.
        """
        return (
            r"model\.language_model\.layers\.\d+\."
            r"(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
        )


# ----------------------------------------------------------------------------------------------------------
# Helpers (pure functions on PIL images and numbers)


def _normalised(region: Region, width: int, height: int) -> str:
    x1, y1, x2, y2 = region.box
    return f"[{x1 / width:.2f}, {y1 / height:.2f}, {x2 / width:.2f}, {y2 / height:.2f}]"


def _region_words(region: Region, k: int, view: str, width: int, height: int) -> str:
    if view == "crop":
        return "this image"
    if view == "boxes":
        return f"box {k} (drawn and numbered on the image)"
    return f"the box {_normalised(region, width, height)} (x1, y1, x2, y2, normalised to 0..1)"


def _region_listing(regions: Sequence[Region], view: str, width: int, height: int) -> str:
    """SRUM's request body: ``Region ID: k`` with its bounding box (normalised) or a pointer to the drawing."""
    blocks = []
    for k, region in enumerate(regions, start=1):
        if view == "coords":
            blocks.append(f"Region ID: {k}\nBounding Box: {_normalised(region, width, height)}")
        elif view == "boxes":
            blocks.append(f"Region ID: {k}\nBounding Box: the box numbered {k} on the image")
        else:
            blocks.append(f"Region ID: {k}\nBounding Box: the whole image")
    return "\n\n".join(blocks)


def draw_numbered_boxes(image: Any, regions: Sequence[Region], width: int | None = None) -> Any:
    """A copy of ``image`` with each region drawn as a coloured rectangle labelled 1, 2, ... (its Region ID)."""
    from PIL import ImageDraw

    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = width or max(1, round(min(out.size) / 128))
    for k, region in enumerate(regions, start=1):
        colour = _BOX_COLOURS[(k - 1) % len(_BOX_COLOURS)]
        x1, y1, x2, y2 = region.box
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=line)
        draw.text((x1 + line + 1, y1 + line), str(k), fill=colour)
    return out


__all__ = [
    "BACKEND_ALIASES",
    "GLOBAL_RUBRIC",
    "JUDGES",
    "REGION_RUBRIC",
    "JanusBackend",
    "clear_janus_cache",
    "draw_numbered_boxes",
    "janus_cpu_warning",
    "load_janus",
    "resolve_model_id",
]
