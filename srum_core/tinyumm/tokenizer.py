"""A word-level tokenizer over the sandbox world's closed vocabulary.

The tiny model only ever reads prompts of the synthetic world's grammar, so a word list is the whole
tokenizer: lower-case, punctuation stripped, one id per word. Id 0 pads, id 1 (``<bos>``) opens every
sequence, so an empty prompt (the classifier-free-guidance "null" condition) is just ``[<bos>]``.
Unknown words raise: the model cannot read them and guessing would hide that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

PAD = "<pad>"
BOS = "<bos>"
SPECIALS: tuple[str, ...] = (PAD, BOS)

_PUNCT = re.compile(r"[,.;:!?\"'()]")


def normalise(text: str) -> list[str]:
    """``"A red circle, left."`` → ``["a", "red", "circle", "left"]``."""
    return _PUNCT.sub(" ", text.lower()).split()


class WordTokenizer:
    """Maps prompts of the sandbox grammar to id tensors.

    ``words``: the world's vocabulary (specials are prepended); ``max_len``: sequence length including
    ``<bos>``. ``encode`` returns ``(ids (B, max_len) long, mask (B, max_len) bool)``; mask is True on real
    tokens.
    """

    def __init__(self, words: Sequence[str], max_len: int):
        if max_len < 2:
            raise ValueError(f"max_len={max_len}: need room for <bos> and at least one word")
        vocab = list(SPECIALS) + [w for w in dict.fromkeys(w.lower() for w in words) if w not in SPECIALS]
        self.vocab: tuple[str, ...] = tuple(vocab)
        self.max_len = int(max_len)
        self._index = {w: i for i, w in enumerate(self.vocab)}

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.vocab)

    def ids(self, text: str) -> list[int]:
        """Ids of one prompt, ``<bos>`` first, unpadded."""
        words = normalise(text)
        unknown = [w for w in words if w not in self._index]
        if unknown:
            raise ValueError(
                f"the sandbox model does not know the word(s) {unknown} in {text!r}; it reads only prompts of "
                "the synthetic world's grammar (see `python -m srum_core prompts --backend sandbox`)"
            )
        out = [self.bos_id] + [self._index[w] for w in words]
        if len(out) > self.max_len:
            raise ValueError(
                f"prompt {text!r} has {len(out) - 1} words; the sandbox model reads at most {self.max_len - 1}"
            )
        return out

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, mask)`` both ``(B, max_len)``; padding is id 0 with mask False."""
        ids = torch.zeros(len(texts), self.max_len, dtype=torch.long)
        mask = torch.zeros(len(texts), self.max_len, dtype=torch.bool)
        for row, text in enumerate(texts):
            seq = self.ids(text)
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = True
        return ids, mask

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[i] for i in ids if self.vocab[i] not in SPECIALS)
