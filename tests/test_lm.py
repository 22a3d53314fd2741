"""PEZ for language-model classification (the paper's Sec. 5) on a tiny random GPT-2 with CLIP's BPE tokenizer.

These check the plumbing and the errors; quality claims (tuning beats the empty template, transfer) need the
trained toy LMs and live with them.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the LM path needs transformers: pip install -e '.[generate]'")

from pez_nodes.core import PEZConfig  # noqa: E402
from pez_nodes.lm.load import CausalLM  # noqa: E402
from pez_nodes.lm.objective import LMClassificationObjective  # noqa: E402
from pez_nodes.lm.task import Example, Task, parse_verbalizer, read_examples  # noqa: E402
from pez_nodes.lm.tune import tune  # noqa: E402

TRAIN = [Example(f"the film was {w}", "pos" if w in ("great", "fine", "lovely") else "neg")
         for w in ("great", "awful", "fine", "dull", "lovely", "boring")]
TASK = Task("{text} It was {mask}", {"neg": "bad", "pos": "good"})


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from tiny_sd import write_clip_tokenizer
    from transformers import CLIPTokenizer, GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tok")
    write_clip_tokenizer(folder)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=49408, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=49406, eos_token_id=49407)).eval()
    return CausalLM(model, CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")), "tiny-random")


def test_tuning_runs_on_the_core_loop_is_seeded_and_reports_accuracies(lm):
    first = tune(lm, TASK, TRAIN, TRAIN, PEZConfig(prompt_len=4, steps=20, restarts=2, seed=1))
    again = tune(lm, TASK, TRAIN, TRAIN, PEZConfig(prompt_len=4, steps=20, restarts=2, seed=1))
    assert first.prompt == again.prompt and first.prompt and first.method == "pez"
    assert 0 <= first.holdout_accuracy <= 1 and 0 <= first.train_accuracy <= 1 and first.perplexity > 1
    objective = LMClassificationObjective(lm, TASK, TRAIN, 4)
    assert objective.same_tokens(first.prompt, lm.encode(first.prompt))


@pytest.mark.parametrize("make, message", [
    (lambda: Task("It was {mask}", {"a": "bad", "b": "good"}), "needs {text}"),
    (lambda: Task("{text} It was", {"a": "bad", "b": "good"}), "must end with {mask}"),
    (lambda: Task("{text} It was {mask}", {"a": "bad"}), "two or more labels"),
    (lambda: parse_verbalizer("neg:bad"), "label=word pairs"),
])
def test_bad_tasks_get_one_clear_error(make, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        make()


def test_bad_data_gets_one_clear_error(lm, tmp_path):
    with pytest.raises(ValueError, match="has no examples"):
        LMClassificationObjective(lm, TASK, [], 4)
    with pytest.raises(ValueError, match=r"labels \['meh'\] without a verbalizer word"):
        LMClassificationObjective(lm, TASK, [*TRAIN, Example("so so", "meh")], 4)
    with pytest.raises(ValueError, match="is 3 tokens for this tokenizer"):
        LMClassificationObjective(lm, Task("{text} It was {mask}", {"neg": "bad", "pos": "goodwillish"}), TRAIN, 4)
    rows = tmp_path / "d.csv"
    rows.write_text("text,label\nnice film,pos\n,neg\n")
    with pytest.raises(ValueError, match="row 2 lacks a text or a label"):
        read_examples(rows)
    good = tmp_path / "d.jsonl"
    good.write_text('{"text": "nice film", "label": "pos"}\n{"text": "bad film", "label": "neg"}\n')
    assert read_examples(good) == [Example("nice film", "pos"), Example("bad film", "neg")]
