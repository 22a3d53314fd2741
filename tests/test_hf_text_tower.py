"""A CLIP text tower from Hugging Face-layout weights equals the model it came from (no ComfyUI needed)."""

from __future__ import annotations

import pytest
import torch

from hf_layout import hf_text_state, random_text_tower
from pez_nodes.core import PEZConfig, distill, encode_token_ids, text_backbone_from_hf
from pez_nodes.core.clip.hf_text_tower import text_tower_from_hf

TEXTS = ["a red circle", "a photo of a cat on a sofa, soft light", "x"]


def _features(backbone, texts):
    return encode_token_ids(backbone, [backbone.tokenize(t) for t in texts])


def test_the_toys_text_tower_survives_the_round_trip_through_the_hf_layout(toy):
    """The trained toy CLIP's text weights, written in the HF layout and read back, give its own features."""
    state = {k: v.half() for k, v in hf_text_state(toy.model).items()}  # hosts keep fp16: converted to fp32
    converted = text_backbone_from_hf(state, heads=4, activation="gelu", name="toy via HF layout")
    ours, theirs = _features(converted, TEXTS), _features(toy, TEXTS)
    torch.testing.assert_close(ours, theirs, rtol=2e-3, atol=2e-3)  # fp16 storage of the weights
    assert converted.token_embedding.dtype == torch.float32 and not converted.token_embedding.requires_grad


def test_converted_tower_matches_transformers_clip_text_model():
    """An independent implementation: Hugging Face's own CLIPTextModelWithProjection on the same weights."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (ComfyUI's requirements bring it)")
    config = transformers.CLIPTextConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                                         projection_dim=48, hidden_act="quick_gelu", eos_token_id=49407,
                                         bos_token_id=49406, pad_token_id=49407)
    torch.manual_seed(0)
    hf = transformers.CLIPTextModelWithProjection(config).eval()
    converted = text_backbone_from_hf(hf.state_dict(), heads=4, activation="quick_gelu", name="hf")
    ids = [converted.tokenize(t) for t in TEXTS]
    width = max(len(i) for i in ids) + 2
    batch = torch.full((len(ids), width), 49407)
    for r, row in enumerate(ids):
        batch[r, : len(row) + 2] = torch.tensor([49406, *row, 49407])
    with torch.no_grad():
        expected = hf(input_ids=batch).text_embeds
    torch.testing.assert_close(encode_token_ids(converted, ids), expected, rtol=1e-4, atol=1e-5)


def test_activation_matters_and_unknown_activation_is_refused():
    tower = random_text_tower(64, 2, 4, 32, seed=1, quickgelu=True)
    state = hf_text_state(tower)
    right = text_backbone_from_hf(state, 4, "quick_gelu", "right")
    wrong = text_backbone_from_hf(state, 4, "gelu", "wrong")
    ids = [right.tokenize("a blue square")]
    padded = torch.zeros(1, 77, dtype=torch.long)  # open_clip's own forward takes the full window
    padded[0, : len(ids[0]) + 2] = torch.tensor([49406, *ids[0], 49407])
    with torch.no_grad():
        reference = tower(padded)
    torch.testing.assert_close(encode_token_ids(right, ids), reference, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(encode_token_ids(wrong, ids), reference, atol=1e-4)
    with pytest.raises(ValueError, match="activation 'relu'"):
        text_tower_from_hf(state, 4, "relu")


def test_missing_projection_gives_the_pooled_output_and_a_given_projection_is_used():
    tower = random_text_tower(64, 2, 4, 32, seed=2)
    state = hf_text_state(tower, with_projection=False)
    pooled = text_tower_from_hf(state, 4, "gelu")
    assert pooled.text_projection is None
    given = text_tower_from_hf(state, 4, "gelu", projection=tower.text_projection.T)
    torch.testing.assert_close(given.text_projection, tower.text_projection)
    with pytest.raises(ValueError, match="projection takes 32-wide input"):
        text_tower_from_hf(state, 4, "gelu", projection=torch.zeros(16, 32))


def test_incomplete_or_foreign_weights_get_one_clear_error():
    state = hf_text_state(random_text_tower(64, 2, 4, 32, seed=3))
    del state["text_model.encoder.layers.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match="layers.1.mlp.fc2.bias"):
        text_tower_from_hf(state, 4, "gelu")
    with pytest.raises(ValueError, match="not a CLIP text model"):
        text_tower_from_hf({"model.layers.0.weight": torch.zeros(2)}, 4, "gelu")


def test_the_hosts_tensors_are_copied_not_shared():
    """Nothing PEZ does may change the host's model: the converted tower owns its tensors."""
    state = hf_text_state(random_text_tower(64, 2, 4, 32, seed=4))
    before = {k: v.clone() for k, v in state.items()}
    converted = text_backbone_from_hf(state, 4, "gelu", "copy")
    with torch.no_grad():
        for p in converted.model.parameters():
            p.add_(1.0)
    assert all(torch.equal(state[k], before[k]) for k in state)


def test_pez_runs_on_a_converted_tower(toy):
    converted = text_backbone_from_hf(hf_text_state(toy.model), 4, "gelu", "toy via HF layout")
    result = distill(converted, "a red circle", PEZConfig(steps=30, prompt_len=4, restarts=2, seed=0))
    assert result.similarity > 0.5 and result.text


def test_a_text_only_tower_refuses_images_with_one_clear_error(toy):
    from pez_nodes import toyworld as tw
    from pez_nodes.core import invert

    converted = text_backbone_from_hf(hf_text_state(toy.model), 4, "gelu", "text only")
    with pytest.raises(ValueError, match="model text only is a text encoder only; it cannot encode images"):
        invert(converted, [tw.render(tw.all_scenes()[0], seed=0)], PEZConfig(steps=1, prompt_len=2))
