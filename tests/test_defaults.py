"""One set of defaults (``core.defaults``) in every front end, and the paper's one switch away.

The ComfyUI nodes' widgets are checked against the same ``core.task_config`` in ``test_node_schema.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import io

import pytest

from pez_nodes import core
from pez_nodes import toyworld as tw
from pez_nodes.cli.common import config_from_args, resolve_task_defaults
from pez_nodes.cli.dispatch import build_parser
from pez_nodes.cli.eval_cmd import resolve_model
from pez_nodes.webui import limits
from pez_nodes.webui.request import parse

TASK_KEYS = ("prompt_len", "steps", "restarts", "patience", "lr", "weight_decay", "method")


def _cli(*argv):
    args = resolve_task_defaults(build_parser().parse_args([str(a) for a in argv]))
    if args.command == "eval":
        resolve_model(args)
    return args


def _settings(config: core.PEZConfig) -> dict:
    return {k: getattr(config, k) for k in TASK_KEYS}


@pytest.mark.parametrize("argv, task", [(("invert", "a.png"), "invert"), (("distill", "a long prompt"), "distill"),
                                        (("concat", "a", "b"), "concat"), (("batch", "photos"), "invert"),
                                        (("eval", "targets"), "invert")])
def test_each_cli_command_learns_with_its_tasks_defaults_and_paper_is_one_flag(argv, task):
    assert _settings(config_from_args(_cli(*argv))) == _settings(core.task_config(task))
    assert _settings(config_from_args(_cli(*argv, "--paper"))) == {k: core.PAPER[k] for k in TASK_KEYS}
    given = config_from_args(_cli(*argv, "--paper", "--restarts", "3", "--prompt-len", "5"))
    assert (given.restarts, given.prompt_len, given.patience) == (3, 5, 0)  # a flag given wins over --paper


def test_the_tasks_differ_only_in_prompt_length_and_the_paper_runs_one_prompt_to_the_end():
    invert, distill, concat = (core.task_config(t) for t in core.TASKS)
    assert (invert.prompt_len, distill.prompt_len, concat.prompt_len) == (16, 8, 16)
    assert dataclasses.replace(distill, prompt_len=16) == invert == concat == core.PEZConfig()
    paper = core.task_config("distill", paper=True)
    assert (paper.prompt_len, paper.steps, paper.restarts, paper.patience, paper.lr, paper.weight_decay) == \
        (16, 3000, 1, 0, 0.1, 0.1)
    assert core.task_config("invert", patience=7).patience == 7
    with pytest.raises(ValueError, match="task 'caption' is unknown; use one of invert, distill, concat"):
        core.task_config("caption")


def test_the_model_is_sd15s_clip_everywhere_but_the_toy_worlds_own_commands():
    assert {_cli(*argv).model for argv in (("invert", "a.png"), ("distill", "t"), ("concat", "a", "b"),
                                           ("batch", "photos"))} == {core.DEFAULT_MODEL} == {"ViT-L-14"}
    assert _cli("eval", "targets").model == "toy"  # the toy generator's own CLIP
    assert _cli("eval", "targets", "--generator", "/models/sd15").model == core.DEFAULT_MODEL
    assert _cli("eval", "targets", "--generator", "/models/sd15", "--model", "ViT-H-14").model == "ViT-H-14"
    demo = _cli("demo")
    assert (demo.model, demo.prompt_len, demo.steps, demo.patience) == ("toy", 8, 300, core.PEZConfig().patience)
    paper = _cli("demo", "--paper")
    assert (paper.prompt_len, paper.steps, paper.restarts, paper.patience) == (16, 3000, 1, 0)
    lm = _cli("lm-tune", "data.jsonl")
    assert (lm.prompt_len, lm.steps) == (8, 300)


def test_python_distill_without_a_config_learns_the_tasks_8_tokens(toy):
    seen = []
    result = core.distill(toy, "a photo of a small red circle on a grass background",
                          callback=lambda step, total, text, sim: seen.append(total) or step >= 2)
    assert seen[0] == core.PEZConfig().steps and len(result.token_ids) <= 8 < core.PEZConfig().prompt_len


def _png() -> str:
    buffer = io.BytesIO()
    tw.render(tw.Scene("star", "blue", "small", "night"), 32, 0).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("kind, body", [("invert", {"images": "png"}), ("distill", {"text": "a cat"}),
                                        ("concat", {"texts": ["a", "b"]})])
def test_a_webui_request_that_omits_a_setting_gets_the_tasks_default(kind, body):
    body = {**body, "images": [_png()]} if kind == "invert" else body
    assert _settings(parse(kind, body, limits.Limits()).config) == _settings(core.task_config(kind))
    assert parse(kind, {**body, "prompt_len": 12}, limits.Limits()).config.prompt_len == 12
