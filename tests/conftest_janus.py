"""Tiny, randomly initialised Janus / OWLv2 / SAM checkpoints built offline and saved to disk.

Each builder writes a folder with ``save_pretrained`` so the code under test loads it through the same
``from_pretrained`` path a hub id takes. Sizes: Janus 32×32 images, a 4×4 code grid (8 px per token), a 300-token
byte-level BPE vocabulary trained here on a few sentences.
"""

from __future__ import annotations

from pathlib import Path

import torch

JANUS_SPECIALS = [
    "<|begin▁of▁sentence|>",
    "<|end▁of▁sentence|>",
    "<pad>",
    "<image_placeholder>",
    "<begin_of_image>",
    "<end_of_image>",
]
# The layout of Janus-Pro's chat template: "<|User|>: text\n\n<|Assistant|>:", an image as its placeholder line.
JANUS_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] | lower == 'user' %}<|User|>: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image_placeholder>\n"
    "{% else %}{{ part['text'] }}\n{% endif %}{% endfor %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)
_CORPUS = [
    "Yes No yes no Yes, No. yes. no. Score: 0.5 Reason: the layout matches the prompt",
    "Region ID: 1 Identified Object: red car Bounding Box: [0.10, 0.20, 0.50, 0.90]",
    "a green bench and a red car, three dogs and two cats, a book on the left of a bird",
    "<|User|>: <|Assistant|>: Does the arrangement match? Is the object in box 1 well drawn?",
]


def build_tiny_janus(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``JanusForConditionalGeneration`` and its ``JanusProcessor`` to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusProcessor, PreTrainedTokenizerFast
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=JANUS_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_CORPUS, trainer)
    bos = JANUS_SPECIALS[0]
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, bpe.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=bos,
        eos_token=JANUS_SPECIALS[1],
        pad_token="<pad>",
        padding_side="left",
        extra_special_tokens={
            "image_token": "<image_placeholder>",
            "boi_token": "<begin_of_image>",
            "eoi_token": "<end_of_image>",
        },
    )
    image_processor = JanusImageProcessorPil(size={"height": 16, "width": 16}, min_size=2)
    processor = JanusProcessor(image_processor, tokenizer, chat_template=JANUS_CHAT_TEMPLATE, num_image_tokens=16)
    config = JanusConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": bpe.get_vocab_size(),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        # 16×16 understanding input in 4×4 patches → 16 image tokens, the same 4×4 grid the VQ model uses.
        vision_config={
            "image_size": 16,
            "patch_size": 4,
            "num_image_tokens": 16,
            "hidden_size": 32,
            "projection_dim": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "mlp_ratio": 2,
        },
        # Four resolution levels → ×8 upsampling: 4×4 codes decode to 32×32 pixels.
        vq_config={
            "embed_dim": 8,
            "num_embeddings": 64,
            "latent_channels": 8,
            "base_channels": 32,
            "channel_multiplier": [1, 1, 1, 1],
            "num_res_blocks": 1,
            "projection_dim": 32,  # the generation aligner maps codes into the LM width
            "image_token_embed_dim": 32,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image_placeholder>"),
    )
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_owlv2(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``Owlv2ForObjectDetection`` (32×32 input, 4×4 patches) and its processor."""
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab: dict[str, int] = {}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    # OWLv2 treats a query whose first token id is 0 as padding, so the start token must not be id 0.
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    processor = Owlv2Processor(Owlv2ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer)
    config = Owlv2Config(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "max_position_embeddings": 16,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "image_size": 32,
            "patch_size": 4,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_sam(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``SamModel`` (64×64 input, 8×8 embeddings, 32×32 low-res masks) and its processor."""
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    image_processor = SamImageProcessorPil(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 32},
        mask_pad_size={"height": 32, "width": 32},
    )
    config = SamConfig(
        vision_config={
            "hidden_size": 32,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 8,
            "window_size": 4,
            "global_attn_indexes": [1],
            "num_pos_feats": 8,
            "mlp_dim": 64,
            # SAM's default init (1e-10) gives all-equal masks; a visible init gives varied ones to sort.
            "initializer_range": 0.5,
        },
        prompt_encoder_config={"hidden_size": 16, "image_size": 64, "patch_size": 8, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 16,
            "mlp_dim": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
    )
    torch.manual_seed(seed)
    model = SamModel(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    SamProcessor(image_processor).save_pretrained(path)
    return path
