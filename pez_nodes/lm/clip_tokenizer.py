"""CLIP's BPE as files ``transformers`` reads, so a causal LM can share CLIP's token ids.

open_clip ships the BPE (``bpe_simple_vocab_16e6.txt.gz``); written as ``vocab.json`` + ``merges.txt`` it
loads as ``transformers.CLIPTokenizer`` with the same ids as ``open_clip.tokenize`` — the property that lets
one toy LM both classify (Sec. 5) and score a CLIP prompt's fluency. Needs no ``transformers`` itself.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_clip_tokenizer(folder: Path | str) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for ``CLIPTokenizer`` into ``folder``, from open_clip's BPE."""
    from open_clip.tokenizer import SimpleTokenizer

    folder = Path(folder)
    bpe = SimpleTokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    vocab = dict(bpe.encoder)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = vocab.pop("<start_of_text>"), vocab.pop("<end_of_text>")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    merges = sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair, _ in merges) + "\n")
    return folder
