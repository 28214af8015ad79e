"""Tiny random diffusers pipelines (SD3, FLUX.1, Sana) and a tiny random Qwen2.5-VL, built offline and saved to disk.

Every builder writes a folder with ``save_pretrained`` in the layout the published checkpoints use
(``model_index.json`` + one subfolder per component; ``config.json`` + processor files for the judge), so the
backend under test loads them through the same ``from_pretrained`` path a hub id takes. The classes are the real
ones (``StableDiffusion3Pipeline``, ``FluxPipeline``, ``SanaPipeline``, ``Qwen2_5_VLForConditionalGeneration``);
only the sizes are small. Tokenizers are trained or written here, never downloaded.

Sizes: VAEs with three resolution levels (×4) and 4 latent channels; SD3 patches of 2 and FLUX's 2×2 packing, so
one latent token covers 8×8 pixels and a 32×32 image is a 4×4 token grid (Sana: 1-patches, 4 px, an 8×8 grid).
Qwen2.5-VL: width 32, two layers, a one-block vision tower with 14-pixel patches merged 2×2 (a 56×56 input is 4
image tokens).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

_SYMBOLS = string.ascii_lowercase + string.digits + ".,:;-'\"[]{}()_/"


def clip_tokenizer() -> object:
    """A character-level CLIP tokenizer (every letter a token, with and without the word end)."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for ch in _SYMBOLS:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer() -> object:
    """A character-level T5 (Unigram) tokenizer with its three special tokens first, as T5's."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + ch, -3.0) for ch in _SYMBOLS] + [(ch, -4.0) for ch in _SYMBOLS]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _clip_text(vocab: int, projection: bool, seed: int) -> object:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=37,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
        hidden_act="gelu",
    )
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _t5_encoder(vocab: int, d_model: int, seed: int) -> object:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab,
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


def _vae(seed: int, scaling: float, shift: float) -> object:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=scaling,
        shift_factor=shift,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()


def build_tiny_sd3(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``StableDiffusion3Pipeline`` (two CLIPs, a T5, an MMDiT with 2-patches, ×4 VAE)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    clip, t5 = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=64,  # T5 width; the two CLIPs' 32 + 32 are padded up to it
        caption_projection_dim=16,
        pooled_projection_dim=64,  # the two CLIP projections, concatenated
        out_channels=4,
        pos_embed_max_size=16,
    ).eval()
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(seed + 1, scaling=1.5, shift=0.06),
        text_encoder=_clip_text(len(clip), True, seed + 2),
        tokenizer=clip,
        text_encoder_2=_clip_text(len(clip), True, seed + 3),
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5_encoder(len(t5), 64, seed + 4),
        tokenizer_3=t5,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_flux(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``FluxPipeline`` (CLIP pooled + T5 sequence, guidance-distilled, 2×2 packing)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    clip, t5 = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2×2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096
    )
    pipe = FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=_vae(seed + 1, scaling=0.36, shift=0.12),
        text_encoder=_clip_text(len(clip), False, seed + 2),
        tokenizer=clip,
        text_encoder_2=_t5_encoder(len(t5), 32, seed + 3),
        tokenizer_2=t5,
    )
    pipe.save_pretrained(path)
    return path


def gemma_tokenizer() -> object:
    """A character-level Gemma tokenizer (``▁`` marks a space, as Gemma's), specials first."""
    from transformers import GemmaTokenizer

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁", *string.ascii_letters, *_SYMBOLS[26:], "!", "?", "\n"]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    return GemmaTokenizer(vocab=vocab, merges=[])


def build_tiny_sana(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``SanaPipeline`` (Gemma2 text encoder, linear-attention DiT with 1-patches, a ×4
    deep-compression autoencoder, flow DPM-Solver): 4 px per token, a 32×32 image is an 8×8 token grid."""
    from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = gemma_tokenizer()
    torch.manual_seed(seed)
    transformer = SanaTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=4,
        num_layers=1,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=32,
        sample_size=8,
        patch_size=1,
    ).eval()
    torch.manual_seed(seed + 1)
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types="ResBlock",
        decoder_block_types="ResBlock",
        encoder_block_out_channels=(8, 8, 8),
        decoder_block_out_channels=(8, 8, 8),
        encoder_layers_per_block=(1, 1, 1),
        decoder_layers_per_block=(1, 1, 1),
        encoder_qkv_multiscales=((), (), ()),
        decoder_qkv_multiscales=((), (), ()),
        upsample_block_type="interpolate",
        downsample_block_type="conv",
        scaling_factor=0.41,
    ).eval()
    torch.manual_seed(seed + 2)
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=2048,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    ).eval()
    scheduler = DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.save_pretrained(path)
    return path


# Qwen2.5-VL's chat layout: a system turn, then the user turn with each image as its vision block.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_CORPUS = [
    "Yes No yes no Yes, No. Score: 0.5 Reason: the layout matches the prompt. Identified Object: a red car",
    "Region ID: 1 Bounding Box: [0, 0, 32, 64] --- a detailed answer, in JSON: bbox_2d label",
    '```json [{"bbox_2d": [1, 2, 30, 40], "label": "red car"}] ``` system user assistant',
    "a green bench and a red car, three dogs and two cats, a book on the left of a bird, a blue cup",
    "You are a helpful assistant. Does the arrangement match the prompt? Answer Yes or No.",
]


def qwen_tokenizer(path: Path) -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_CORPUS, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(dict(model["vocab"])), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = Qwen2Tokenizer(
        vocab=str(path / "vocab.json"),
        merges=str(path / "merges.txt"),
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS[1:]})
    return tokenizer


def build_tiny_qwen25vl(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``Qwen2_5_VLForConditionalGeneration`` with its processor files in the published layout
    (tokenizer files, ``preprocessor_config.json``, ``chat_template.jinja``, ``processor_config.json``)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = qwen_tokenizer(path)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.save_pretrained(path)
    # The processor's parts, written one by one: building a Qwen2_5_VLProcessor object needs its video processor,
    # which needs torchvision (not a dependency here); the files are those of the published repositories.
    tokenizer.save_pretrained(path)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(path)
    (path / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE, encoding="utf-8")
    (path / "processor_config.json").write_text(
        json.dumps({"processor_class": "Qwen2_5_VLProcessor"}), encoding="utf-8"
    )
    return path
