"""Projection returns exact vocabulary rows, never special tokens; the gradient at P′ reaches P."""

import torch

from pez_nodes.core import PromptLayout, projector_for
from pez_nodes.core.optim.objective import ClipObjective


def test_projection_returns_exact_rows_and_skips_special_tokens(toy):
    proj = projector_for(toy)
    table = toy.token_embedding
    ids = torch.tensor([[toy.sot_id, toy.eot_id, 736, 1901]])
    noisy = table[ids] + 1e-4 * torch.randn(1, 4, table.shape[1])
    got = proj.nearest_ids(noisy)
    assert got[0, 2:].tolist() == [736, 1901]
    assert toy.sot_id not in got.tolist()[0] and toy.eot_id not in got.tolist()[0]
    assert torch.equal(proj.embed(got), table[got])
    # brute force: the chosen row has the largest cosine among allowed rows
    p = torch.randn(7, table.shape[1])
    allowed = proj.allowed_ids
    cos = torch.nn.functional.normalize(p, dim=-1) @ torch.nn.functional.normalize(table[allowed], dim=-1).T
    assert proj.nearest_ids(p).tolist() == allowed[cos.argmax(-1)].tolist()


def test_projector_is_cached_per_model(toy):
    assert projector_for(toy) is projector_for(toy)


def test_gradient_at_projected_prompt_reaches_continuous_prompt(toy):
    proj = projector_for(toy)
    target = torch.nn.functional.normalize(torch.randn(1, toy.model.text_projection.shape[1]), dim=-1)
    objective = ClipObjective(toy, PromptLayout.plain(4), target, torch.ones(1))
    prompt = (toy.token_embedding[torch.tensor([[736, 1901, 2442, 5922]])] + 0.01).requires_grad_(True)
    ids = proj.nearest_ids(prompt)
    projected = prompt + (proj.embed(ids) - prompt).detach()
    assert torch.equal(projected.detach(), toy.token_embedding[ids])  # forward value is exactly E[ids]
    objective(projected)[0].sum().backward()
    # the reference: the gradient with respect to a leaf holding E[ids]
    leaf = toy.token_embedding[ids].clone().requires_grad_(True)
    objective(leaf)[0].sum().backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert torch.allclose(prompt.grad, leaf.grad)
