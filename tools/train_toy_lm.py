"""Train the two toy language models (GPT-2 layout, CLIP's BPE tokenizer) on the synthetic question corpus.

    python tools/train_toy_lm.py                # both sizes, ~13 min on 2 cores; writes pez_nodes/models/toy_lm_{small,large}/

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
from pez_nodes.lm.clip_tokenizer import write_clip_tokenizer  # noqa: E402

SIZES = {"small": dict(n_embd=64, n_layer=2, n_head=2), "large": dict(n_embd=96, n_layer=4, n_head=4)}
MODELS = ROOT / "pez_nodes" / "models"
ANSWER_WEIGHT = 5.0


def corpus_words(lines: list[str]) -> list[str]:
    """The words the corpus uses (a prompt limited to them: ``load_lm(..., vocabulary="declared")``)."""
    return sorted({w for line in lines for w in line.lower().split()})


def answer_accuracy(model, tokenizer, n: int = 200) -> dict:
    """Per question: share of held-out marked sentences whose answer (yes / no) the LM ranks first."""
    from pez_nodes.lm.load import CausalLM
    from pez_nodes.lm.objective import accuracy

    lm = CausalLM(model, tokenizer, "training")
    return {q: accuracy(lm, synthetic.task(), q + " :", synthetic.examples(q, n, seed=99)) for q in synthetic.QUESTIONS}


def train(size: str, lines: list[str], tokenizer, minutes: float, batch: int, lr: float, seed: int) -> tuple:
    """Next-token training; the answer token (last before the end) weighs ``ANSWER_WEIGHT`` times a caption token."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=80, bos_token_id=tokenizer.bos_token_id,
                                       eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **SIZES[size]))
    answers = {tokenizer.convert_tokens_to_ids(w + "</w>") for w in synthetic.VERBALIZER.values()}
    rows = [tokenizer.encode(line, add_special_tokens=False) + [eos] for line in lines]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    start, step, ema = time.time(), 0, None
    gen = torch.Generator().manual_seed(seed)
    while time.time() - start < minutes * 60:
        pick = torch.randint(len(rows), (batch,), generator=gen).tolist()
        width = max(len(rows[i]) for i in pick)
        ids = torch.full((batch, width), eos)
        weight = torch.zeros(batch, width - 1)
        for j, i in enumerate(pick):
            row = rows[i]
            ids[j, : len(row)] = torch.tensor(row)
            weight[j, : len(row) - 1] = 1.0
            if len(row) > 2 and row[-2] in answers and " It was " in lines[i]:
                weight[j, len(row) - 3] = ANSWER_WEIGHT  # predicting the answer from "... It was"
        logits = model(ids).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
        loss = (nll * weight.flatten()).sum() / weight.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0:
            print(f"{size}: step {step}  loss {ema:.3f}  {time.time() - start:.0f} s", flush=True)
    model.eval()
    return model, {"steps": step, "seconds": round(time.time() - start), "final_loss_ema": round(ema, 4),
                   "config": SIZES[size], "batch": batch, "lr": lr, "seed": seed, "answer_weight": ANSWER_WEIGHT,
                   "marked_answer_accuracy": answer_accuracy(model, tokenizer)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=6.5, help="training time per model (both: ~13 min on 2 cores)")
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
        (folder / "pez_vocabulary.txt").write_text("\n".join(corpus_words(lines)) + "\n")  # vocabulary="declared"
        (folder / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {folder}: {report}")


if __name__ == "__main__":
    main()
