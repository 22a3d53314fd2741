"""PEZ for language-model classification (the paper's Sec. 5) on a tiny random GPT-2 with CLIP's BPE tokenizer.

These check the plumbing and the errors; quality claims (tuning beats the empty template, transfer) need the
trained toy LMs and live with them.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

pytest.importorskip("transformers", reason="the LM path needs transformers: pip install -e '.[generate]'")

from pez_nodes.cli import main  # noqa: E402
from pez_nodes.cli.lm_cmd import split  # noqa: E402
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
    (lambda: Task("{text} It was {mask}", {"a": "good", "b": "good"}), "word 'good' is given to labels ['a', 'b']"),
    (lambda: parse_verbalizer("a=good,b=bad,a=fine"), "names label 'a' more than once"),
    (lambda: Task("{text} {mask} or {mask}", {"a": "bad", "b": "good"}), "has 2 {mask}s"),
])
def test_bad_tasks_get_one_clear_error(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
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
    with pytest.raises(ValueError, match="'.*d.csv', line 3: the row lacks a text or a label"):
        read_examples(rows)
    good = tmp_path / "d.jsonl"
    good.write_text('{"text": "nice film", "label": "pos"}\n{"text": "bad film", "label": "neg"}\n')
    assert read_examples(good) == [Example("nice film", "pos"), Example("bad film", "neg")]


def test_one_word_two_labels_is_refused_at_the_token_too(lm):
    """CLIP's tokenizer lower-cases: 'Good' and 'good' are one token, so the LM could not tell the labels apart."""
    with pytest.raises(ValueError, match="'good' \\(label 'neg'\\) and 'Good' \\(label 'pos'\\) are the same token"):
        LMClassificationObjective(lm, Task("{text} It was {mask}", {"neg": "good", "pos": "Good"}), TRAIN, 4)


def test_data_files_as_spreadsheets_and_editors_write_them(tmp_path):
    bom = tmp_path / "sheet.csv"  # Excel's "CSV UTF-8" starts with a byte-order mark
    bom.write_bytes("text,label\r\nnice film,pos\r\n\"long,\nquoted\",neg\r\n".encode("utf-8-sig"))
    assert read_examples(bom) == [Example("nice film", "pos"), Example("long,\nquoted", "neg")]
    lines = tmp_path / "d.jsonl"  # the bad line is the editor's line 3 (a blank line before it counts)
    lines.write_text('{"text": "nice film", "label": "pos"}\n\n{"text": "bad film", label: "neg"}\n')
    with pytest.raises(ValueError, match=f"data file '{lines}', line 3: not JSON"):
        read_examples(lines)
    lines.write_bytes('{"text": "nice film", "label": "pos"}\n\n["bad film", "neg"]\n'.encode("utf-8-sig"))
    with pytest.raises(ValueError, match=f"data file '{lines}', line 3: the row lacks a text or a label"):
        read_examples(lines)
    quoted = tmp_path / "q.csv"  # a quoted field over two lines: the bad row starts on line 4
    quoted.write_text('text,label\n"two\nlines",pos\n,neg\n')
    with pytest.raises(ValueError, match="line 4: the row lacks"):
        read_examples(quoted)
    columns = tmp_path / "c.csv"
    columns.write_text("sentence,label\nnice film,pos\n")
    with pytest.raises(ValueError, match=r"has the columns \['sentence', 'label'\] in its header row"):
        read_examples(columns)


def test_too_few_rows_say_how_many_are_needed():
    with pytest.raises(ValueError, match="data 'one.csv' has 1 example; without --holdout at least 2 are needed"):
        split(TRAIN[:1], None, 0, has_holdout=False, what="data 'one.csv'")
    train, holdout, _ = split(TRAIN[:2], None, 0, has_holdout=False)
    assert len(train) == len(holdout) == 1
    assert split(TRAIN[:1], None, 0, has_holdout=True)[0] == TRAIN[:1]


def _rows(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("one row", "has 1 example; without --holdout at least 2 are needed"),
    ("validation label", "--validation VALIDATION has labels ['meh'] without a verbalizer word"),
    ("holdout label", "--holdout VALIDATION has labels ['meh'] without a verbalizer word"),
    ("shared word", "word 'good' is given to labels ['pos', 'neg']"),
    ("two masks", "has 2 {mask}s"),
])
def test_lm_tune_refuses_bad_inputs_before_the_model_loads(tmp_path, capsys, case, message):
    """--model names no model: an input error that still comes out proves it came before any loading."""
    data = _rows(tmp_path / "d.csv", [(e.text, e.label) for e in TRAIN][: 1 if case == "one row" else 6])
    validation = _rows(tmp_path / "v.csv", [("so so", "meh"), ("fine", "pos")])
    argv = ["lm-tune", data, "--model", str(tmp_path / "no_model"), "--quiet",
            "--verbalizer", "pos=good,neg=good" if case == "shared word" else "pos=good,neg=bad"]
    argv += {"validation label": ["--validation", validation], "holdout label": ["--holdout", validation],
             "two masks": ["--template", "{mask} {text} It was {mask}"]}.get(case, [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.replace("VALIDATION", repr(validation)) in err[0], err


def test_tuning_reports_a_patience_stop(lm, capsys):
    """The loop stops when no step has improved the best prompt for ``patience`` steps; the result says so."""
    result = tune(lm, TASK, TRAIN, TRAIN, PEZConfig(prompt_len=4, steps=500, restarts=1, patience=2, seed=1))
    assert result.stop_reason == "patience" and result.steps < 500 and result.to_dict()["stop_reason"] == "patience"
    plain = tune(lm, TASK, TRAIN, TRAIN, PEZConfig(prompt_len=4, steps=3, restarts=1, patience=0))
    assert plain.stop_reason == "completed"
    assert main(["lm-tune", "synthetic:outdoors", "--steps", "500", "--patience", "2", "--prompt-len", "2",
                 "--restarts", "1", "--json", "--quiet", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stop_reason"] == "patience" and out["steps"] < 500, out
