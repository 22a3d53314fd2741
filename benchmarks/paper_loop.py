"""A faithful re-implementation of the paper's optimisation loop, as the benchmarks' baseline.

What the paper's official code does each step:
1. project P onto the vocabulary with a nearest-neighbour search that normalises the *whole*
   embedding table and P every step (``sentence_transformers.util.semantic_search``, top-1), over all
   49,408 ids, special tokens included;
2. build ``[SOT, P′, EOT, 0, 0, ...]`` padded to 77 tokens;
3. a no-grad text pass on P′ against all targets to pick the best restart, and decode its text;
4. a grad pass on P′ against the sampled targets; loss = 1 − mean cosine;
5. copy the gradient at P′ into P.grad; AdamW step.

It uses the same frozen modules as ours (``ClipBackbone.encode_embeddings`` over the full 77
positions is exactly open_clip's text path), so the difference measured is the loop's work only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pez_nodes.core import ClipBackbone


@dataclass
class PaperResult:
    text: str
    similarity: float  # best "universal" cosine of the projected ids, as the paper reports it
    steps: int
    seconds: float
    history: list[tuple[float, float]]  # (seconds since start, best similarity so far)


def paper_loop(model: ClipBackbone, targets: torch.Tensor, prompt_len: int = 16, steps: int = 3000,
               lr: float = 0.1, weight_decay: float = 0.1, restarts: int = 1, batch_size: int | None = None,
               seed: int = 0, time_budget: float | None = None, allow_special: bool = True) -> PaperResult:
    """Run the paper's loop against normalised target features ([T, F]).

    ``allow_special=False`` removes the start/end tokens from its vocabulary: the quality benchmark
    needs that, or the loop "wins" with prompts full of <end_of_text> that no user can paste.
    """
    g = torch.Generator().manual_seed(seed)
    table = model.token_embedding.detach()
    vocab, _ = table.shape
    ctx = model.context_length
    device = table.device
    targets = F.normalize(targets.float(), dim=-1)
    n_targets = targets.shape[0]
    # all ids, special tokens included; a model that declares its vocabulary (the toy) limits both loops to it
    known = getattr(model, "vocabulary_ids", None)
    candidates = torch.arange(vocab) if known is None else torch.cat([known.cpu(), torch.tensor(sorted(model.special_ids))])
    if not allow_special:
        candidates = candidates[~torch.isin(candidates, torch.tensor(sorted(model.special_ids)))]
    candidates = candidates.to(device)
    ids0 = candidates[torch.randint(len(candidates), (restarts, prompt_len), generator=g).to(device)]
    prompt = table[ids0].clone().float().requires_grad_(True)
    opt = torch.optim.AdamW([prompt], lr=lr, weight_decay=weight_decay)
    template = torch.zeros(restarts, ctx, dtype=torch.long, device=device)
    template[:, 0] = model.sot_id
    template[:, prompt_len + 1] = model.eot_id
    eot_index = torch.full((restarts,), prompt_len + 1, device=device)
    best_sim, best_text, history = -1.0, "", []
    start = time.perf_counter()
    step = 0
    for step in range(1, steps + 1):
        # 1. nearest neighbour: normalise the whole table and the prompt, every step
        table_n = F.normalize(table[candidates].float(), dim=-1)
        hits = (F.normalize(prompt.detach().reshape(-1, prompt.shape[-1]), dim=-1) @ table_n.T).topk(1, dim=-1)
        ids = candidates[hits.indices.reshape(restarts, prompt_len)]
        projected = table[ids].float().clone().requires_grad_(True)

        def embeds(p):
            full = table[template].float().clone()
            full[:, 1 : prompt_len + 1] = p
            return full

        # 3. a no-grad pass to score every restart against all targets; decode the best every step
        with torch.no_grad():
            feats = F.normalize(model.encode_embeddings(embeds(projected), eot_index).float(), dim=-1)
            universal = (feats @ targets.T).mean(-1)
            r = int(universal.argmax())
            text = model.decode(ids[r].tolist())
            if float(universal[r]) > best_sim:
                best_sim, best_text = float(universal[r]), text
        # 4. a grad pass against the sampled targets
        sample = torch.randperm(n_targets, generator=g)[:batch_size] if batch_size else torch.arange(n_targets)
        feats = F.normalize(model.encode_embeddings(embeds(projected), eot_index).float(), dim=-1)
        loss = (1 - (feats @ targets[sample].T).mean(-1)).sum()
        grad, = torch.autograd.grad(loss, projected)
        # 5. the gradient at P′ becomes P's gradient
        prompt.grad = grad
        opt.step()
        opt.zero_grad(set_to_none=True)
        now = time.perf_counter() - start
        history.append((now, best_sim))
        if time_budget is not None and now >= time_budget:
            break
    return PaperResult(best_text, best_sim, step, time.perf_counter() - start, history)
