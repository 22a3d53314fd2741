"""The PEZ step as one compiled graph (``core/optim/step.py``, ``PEZConfig.compile_step``).

Projection → encoder forward on the projected prompt → loss → backward → AdamW → the rule's after-update trace
into one Dynamo graph with no break, for every gradient method, with the fluency term and for a two-tower
``JointClip`` (``torch._dynamo.explain``); a run with the compiled step gives what the eager run gives.
The cheap backends (``eager``: Dynamo alone, ``aot_eager``: + AOTAutograd, no code generated) keep this file
fast; one run with inductor, which generates C++ on the CPU (35 s to compile with a cold cache on 2 cores, 67 s
while the machine was busy), is marked ``slow``: ``-m "not slow"`` leaves it out.

Measured with the same seed (20 steps, every step's best and mean similarity): ``aot_eager`` gives the eager
run's token ids, with similarities equal (pez, autoprompt_sgd, fluentprompt, fluency, two towers) or within
4.8e-7 (soft's per-step mean); inductor within 1.2e-7. Allowed: 1e-5.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from hf_layout import hf_text_state, random_text_tower
from pez_nodes import toyworld as tw
from pez_nodes.core import JointClip, PEZConfig, Tower, distill, invert, text_backbone_from_hf
from pez_nodes.core.optim import step as step_module
from pez_nodes.core.optim.fluency import FluentObjective, PromptFluency
from pez_nodes.core.optim.layout import PromptLayout
from pez_nodes.core.optim.methods import GRADIENT_METHODS, update_rule
from pez_nodes.core.optim.objective import ClipObjective
from pez_nodes.core.optim.projection import projector_for
from pez_nodes.core.optim.step import PEZStep, use_compiled
from pez_nodes.core.optim.text_encoder import encode_text
from pez_nodes.core.optim.vocabulary import allowed_token_ids

TOL = 1e-5
FAST = dict(steps=20, prompt_len=4, restarts=2, patience=0)


@pytest.fixture(scope="module")
def pictures():
    return [tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=1),
            tw.render(tw.Scene("ring", "white", "small", "sand"), size=64, seed=1)]


@pytest.fixture(scope="module")
def joint(toy):
    a = text_backbone_from_hf(hf_text_state(toy.model), 4, "gelu", "a")
    b = text_backbone_from_hf(hf_text_state(random_text_tower(96, 2, 4, 48, seed=7)), 4, "gelu", "b")
    return JointClip([Tower("a", a), Tower("b", b, weight=0.5)], "a+b")  # SDXL-style: one prompt, two towers


@pytest.fixture
def backend(monkeypatch):
    """Compiled steps use ``aot_eager``: Dynamo and AOTAutograd trace the whole step, nothing is code-generated."""
    monkeypatch.setattr(step_module, "BACKEND", "aot_eager")


def _explain(model, method="pez", wrap=None, sample=None):
    """``torch._dynamo.explain`` of one step, as ``CompiledStep`` runs it (``trace_autograd_ops``)."""
    targets = torch.stack([encode_text(model, "a red circle"), encode_text(model, "a blue square")])
    objective = ClipObjective(model, PromptLayout.plain(4), targets, torch.tensor([1.0, -0.5]))
    projector = projector_for(model, allowed_token_ids(model))
    objective = wrap(objective, projector) if wrap else objective
    rule = update_rule(PEZConfig(method=method))
    with torch.inference_mode(False), torch.enable_grad():
        prompt = projector.embed(projector.random_ids((2, 4), torch.Generator().manual_seed(0))).float()
        prompt = prompt.clone().requires_grad_(True)
        step = PEZStep(objective, projector, rule, prompt, 0.1, 0.1)
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return torch._dynamo.explain(step)(prompt, sample, rule.noise(prompt, 1, 10))


def _no_breaks(explained):
    reasons = [str(b.reason).splitlines()[0] for b in explained.break_reasons]
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), reasons
    assert explained.op_count > 50  # the whole step: projection, encoder, its backward, AdamW


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_the_step_of_each_gradient_method_is_one_graph(toy, method):
    _no_breaks(_explain(toy, method, sample=torch.tensor([1])))


def test_the_step_with_the_fluency_term_is_one_graph(toy, toy_lm_small):
    _no_breaks(_explain(toy, wrap=lambda o, p: FluentObjective(o, PromptFluency(toy_lm_small.model, p), 0.03)))


def test_the_step_of_a_two_tower_model_is_one_graph(joint):
    _no_breaks(_explain(joint))


def _same(eager, compiled, tol=TOL):
    """Same prompt, same tokens, and every step's best and mean similarity within ``tol``."""
    assert not compiled.notes, compiled.notes  # fullgraph compiled: no fallback to eager
    assert (compiled.text, compiled.token_ids) == (eager.text, eager.token_ids)
    assert abs(compiled.similarity - eager.similarity) <= tol
    assert [h[0] for h in compiled.history] == [h[0] for h in eager.history]
    assert max(abs(a - b) for x, y in zip(eager.history, compiled.history) for a, b in zip(x[1:], y[1:])) <= tol
    assert [c.token_ids for c in compiled.best_per_restart] == [c.token_ids for c in eager.best_per_restart]
    if eager.soft_similarity is not None:
        assert abs(compiled.soft_similarity - eager.soft_similarity) <= tol


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_a_compiled_run_gives_the_eager_runs_prompt(toy, pictures, backend, method):
    config = PEZConfig(method=method, targets_per_step=1 if method == "pez" else None, **FAST)
    targets = pictures if method == "pez" else pictures[:1]  # pez: two targets, one sampled each step
    _same(invert(toy, targets, config), invert(toy, targets, PEZConfig(**{**config.to_dict(), "compile_step": "on"})))


def test_a_compiled_run_with_fluency_or_two_towers_gives_the_eager_runs_prompt(toy, joint, toy_lm_small, pictures,
                                                                              backend):
    fluent = PEZConfig(fluency=0.03, **FAST)
    _same(invert(toy, pictures[:1], fluent, fluency_lm=toy_lm_small),
          invert(toy, pictures[:1], PEZConfig(**{**fluent.to_dict(), "compile_step": "on"}), fluency_lm=toy_lm_small))
    _same(distill(joint, "a green triangle", PEZConfig(**FAST)),
          distill(joint, "a green triangle", PEZConfig(compile_step="on", **FAST)))


def test_a_later_run_of_the_same_shape_reuses_the_graph(toy, pictures, backend):
    """A host running PEZ again (other targets, other seed) pays no second compilation, and gets the eager prompt."""
    from torch._dynamo.utils import counters

    config = PEZConfig(compile_step="on", steps=6, prompt_len=3, restarts=3, patience=0)
    invert(toy, pictures[:1], config)
    graphs = counters["stats"]["unique_graphs"]
    again = invert(toy, pictures[1:], PEZConfig(**{**config.to_dict(), "seed": 5}))
    assert counters["stats"]["unique_graphs"] == graphs
    _same(invert(toy, pictures[1:], PEZConfig(**{**config.to_dict(), "seed": 5, "compile_step": "off"})), again)


def test_a_step_that_fails_to_compile_runs_eagerly_and_says_so(toy, monkeypatch):
    def broken(graph, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(step_module, "BACKEND", broken)
    config = PEZConfig(steps=5, prompt_len=3, restarts=2)
    result = distill(toy, "a red circle", PEZConfig(**{**config.to_dict(), "compile_step": "on"}))
    assert any("compile_step" in n and "no compiler here" in n and "eagerly" in n for n in result.notes), result.notes
    eager = distill(toy, "a red circle", config)
    assert (result.text, result.similarity, result.history) == (eager.text, eager.similarity, eager.history)


def test_compile_step_is_off_by_default_auto_only_on_cuda_and_checked():
    assert PEZConfig().compile_step == "off"
    assert not use_compiled("auto", torch.device("cpu")) and use_compiled("auto", torch.device("cuda"))
    assert use_compiled("on", torch.device("cpu")) and not use_compiled("off", torch.device("cuda"))
    with pytest.raises(ValueError, match="compile_step='fast' is unknown; use off, on or auto"):
        PEZConfig(compile_step="fast").validate()


@pytest.mark.slow  # inductor generates and compiles C++: 35 s here with a cold cache (67 s on a busy machine)
@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="inductor needs a C++ compiler on the CPU")
def test_an_inductor_compiled_run_gives_the_eager_runs_prompt(toy):
    config = PEZConfig(steps=5, prompt_len=3, restarts=2, patience=0)
    _same(distill(toy, "a red circle on grass", config),
          distill(toy, "a red circle on grass", PEZConfig(**{**config.to_dict(), "compile_step": "on"})))
