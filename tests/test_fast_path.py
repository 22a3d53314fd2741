"""The fast path (only [SOT, prompt, EOT], one pass) gives the same loss and gradient as the
straightforward path (padded to 77 tokens, as open_clip's encode_text and the paper's code do)."""

import torch
import torch.nn.functional as F

from pez_nodes.core import PEZConfig, PromptLayout, distill, projector_for
from pez_nodes.core.optim.objective import ClipObjective


def test_fast_and_padded_paths_give_equal_loss_and_gradient(toy):
    torch.manual_seed(0)
    m = 6
    target = F.normalize(torch.randn(2, 64), dim=-1)
    objective = ClipObjective(toy, PromptLayout.plain(m), target, torch.tensor([1.0, 0.5]))
    ids = projector_for(toy).random_ids((3, m), torch.Generator().manual_seed(1))

    fast_p = toy.token_embedding[ids].clone().requires_grad_(True)
    fast_loss, _ = objective(fast_p)
    fast_loss.sum().backward()

    slow_p = toy.token_embedding[ids].clone().requires_grad_(True)
    full = torch.zeros(3, toy.context_length, dtype=torch.long)
    full[:, 0], full[:, m + 1] = toy.sot_id, toy.eot_id
    embeds = toy.token_embedding[full].clone()
    embeds[:, 1 : m + 1] = slow_p
    tower = toy.tower  # open_clip's own text path over all 77 positions, pooled at the end token
    x = tower.transformer(embeds + tower.positional_embedding, attn_mask=tower.attn_mask)
    pooled = tower.ln_final(x)[torch.arange(3), full.argmax(-1)] @ tower.text_projection
    cos = F.normalize(pooled, dim=-1) @ target.T
    slow_loss = 1 - (cos * torch.tensor([1.0, 0.5])).sum(-1) / 1.5
    slow_loss.sum().backward()

    assert torch.allclose(fast_loss, slow_loss, atol=1e-6)
    assert torch.allclose(fast_p.grad, slow_p.grad, atol=1e-6, rtol=1e-4)


def test_compiled_encoder_gives_the_same_prompt(toy):
    plain = distill(toy, "a large red circle on grass", PEZConfig(prompt_len=3, steps=15, restarts=2))
    compiled = distill(toy, "a large red circle on grass", PEZConfig(prompt_len=3, steps=15, restarts=2, compile=True))
    assert compiled.text == plain.text and abs(compiled.similarity - plain.similarity) < 1e-5
