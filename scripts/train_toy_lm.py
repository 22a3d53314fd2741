"""Train the two toy language models (GPT-2 layout, CLIP's BPE tokenizer) on the synthetic question corpus.

    python scripts/train_toy_lm.py                # both sizes, ~10 min on 2 cores; writes pez_nodes/models/toy_lm_{small,large}/

The corpus is ``pez_nodes/lm/synthetic.py``'s: toy-world captions asked one of four yes/no questions,
the question named by a marker phrase before the scene. The two models share the tokenizer (CLIP's BPE
from open_clip, written as ``vocab.json`` / ``merges.txt`` for transformers' ``CLIPTokenizer``), so a
prompt tuned on the small one can be scored on the large one (the paper's transfer experiment), and
either can score a CLIP prompt's fluency. Weights are saved as fp16 safetensors (the 49,408-row
embedding table dominates their size).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pez_nodes.lm import synthetic  # noqa: E402

SIZES = {"small": dict(n_embd=64, n_layer=2, n_head=2), "large": dict(n_embd=96, n_layer=4, n_head=4)}
MODELS = ROOT / "pez_nodes" / "models"


def write_clip_tokenizer(folder: Path) -> None:
    """``vocab.json`` and ``merges.txt`` for transformers' ``CLIPTokenizer``, from open_clip's BPE file."""
    from open_clip.tokenizer import SimpleTokenizer

    bpe = SimpleTokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    vocab = dict(bpe.encoder)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = vocab.pop("<start_of_text>"), vocab.pop("<end_of_text>")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    merges = sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair, _ in merges) + "\n")


def train(size: str, lines: list[str], tokenizer, minutes: float, batch: int, lr: float, seed: int) -> tuple:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, bos_token_id=tokenizer.bos_token_id,
                                       eos_token_id=eos, **SIZES[size]))
    rows = [tokenizer.encode(line, add_special_tokens=False) + [eos] for line in lines]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    start, step, ema = time.time(), 0, None
    gen = torch.Generator().manual_seed(seed)
    while time.time() - start < minutes * 60:
        pick = torch.randint(len(rows), (batch,), generator=gen).tolist()
        width = max(len(rows[i]) for i in pick)
        ids = torch.full((batch, width), eos)
        labels = torch.full((batch, width), -100)
        mask = torch.zeros(batch, width, dtype=torch.long)
        for j, i in enumerate(pick):
            ids[j, : len(rows[i])] = torch.tensor(rows[i])
            labels[j, : len(rows[i])] = torch.tensor(rows[i])
            mask[j, : len(rows[i])] = 1
        loss = model(ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0:
            print(f"{size}: step {step}  loss {ema:.3f}  {time.time() - start:.0f} s", flush=True)
    return model.eval(), {"steps": step, "seconds": round(time.time() - start), "final_loss_ema": round(ema, 4),
                          "config": SIZES[size], "batch": batch, "lr": lr, "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="training time per model")
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=MODELS)
    args = ap.parse_args()
    from transformers import CLIPTokenizer

    torch.set_num_threads(args.threads)
    lines = synthetic.corpus(args.lines, seed=0)
    for size in args.sizes.split(","):
        folder = args.out / f"toy_lm_{size}"
        write_clip_tokenizer(folder)
        tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
        model, report = train(size, lines, tokenizer, args.minutes, args.batch, args.lr, seed={"small": 0}.get(size, 1))
        model.half().save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (folder / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {folder}: {report}")


if __name__ == "__main__":
    main()
