"""``PEZConfig.sync_every``: the host reads the device every N steps and still returns what reading every step does.

On CUDA the loop's default is 16 (each read waits for the GPU); the CPU runs the same code here with N > 1.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pez_nodes import core
from pez_nodes import toyworld as tw
from pez_nodes.core.optim.watch import CUDA_SYNC_EVERY, sync_interval

PICTURES = [tw.render(tw.Scene("star", "yellow", "small", "night"), 64, 0),
            tw.render(tw.Scene("circle", "red", "large", "grass"), 64, 1)]


def _same(a: core.PEZResult, b: core.PEZResult) -> None:
    assert (a.text, a.similarity, a.steps, a.stop_reason) == (b.text, b.similarity, b.steps, b.stop_reason)
    assert a.history == b.history
    assert [(c.text, c.similarity) for c in a.candidates] == [(c.text, c.similarity) for c in b.candidates]
    assert [c.text for c in a.best_per_restart] == [c.text for c in b.best_per_restart]


@pytest.mark.parametrize("method", ["pez", "fluentprompt", "soft"])
def test_reading_the_device_every_7_steps_returns_what_reading_every_step_does(toy, method):
    config = core.PEZConfig(prompt_len=4, steps=40, restarts=3, top_k=3, seed=2, method=method)
    every_step = core.invert(toy, PICTURES[:1], config)
    _same(core.invert(toy, PICTURES[:1], dataclasses.replace(config, sync_every=7)), every_step)


def test_a_patience_stop_inside_a_window_is_found_at_its_step_for_each_image(toy):
    config = core.PEZConfig(prompt_len=4, steps=300, restarts=2, patience=15, seed=1)
    every_step = core.invert_each(toy, PICTURES, config)
    assert all(r.stop_reason == "patience" and r.steps < 300 for r in every_step)
    for a, b in zip(core.invert_each(toy, PICTURES, dataclasses.replace(config, sync_every=16)), every_step):
        _same(a, b)


def test_a_callback_stop_is_at_the_step_it_asked_for_with_that_steps_best(toy):
    def stop_at(n, seen):
        return lambda step, total, text, sim: seen.append((step, text, sim)) or step >= n

    seen_1, seen_9 = [], []
    config = core.PEZConfig(prompt_len=4, steps=100, restarts=2, seed=3)
    a = core.invert(toy, PICTURES[:1], dataclasses.replace(config, sync_every=9), stop_at(12, seen_9))
    b = core.invert(toy, PICTURES[:1], config, stop_at(12, seen_1))
    _same(a, b)
    assert a.steps == 12 and a.stop_reason == "callback" and seen_9 == seen_1  # every step reported, in order


def test_a_nan_is_reported_at_its_step_and_the_setting_is_bounded(toy):
    with pytest.raises(ValueError, match="sync_every=65 is out of range; use an integer between 1 and 64"):
        core.PEZConfig(sync_every=65).validate()
    assert sync_interval(None, torch.device("cpu")) == 1 and sync_interval(None, torch.device("cuda")) == CUDA_SYNC_EVERY
    assert sync_interval(5, torch.device("cpu")) == 5
    for sync_every in (None, 8):  # a soft prompt thrown to 1e30 by the first update: the encoder's output is NaN
        with pytest.raises(ValueError, match=r"the loss became NaN/infinite at step 2; lower lr \(now 1e\+30\)"):
            core.invert(toy, PICTURES[:1], core.PEZConfig(prompt_len=4, steps=20, lr=1e30, method="soft",
                                                          sync_every=sync_every))


def test_a_batch_journal_does_not_tell_runs_apart_by_how_often_they_read_the_device():
    from pez_nodes.batch.local import settings_of

    assert settings_of(core.PEZConfig(sync_every=8)) == settings_of(core.PEZConfig())
    assert settings_of(core.PEZConfig(patience=7)) != settings_of(core.PEZConfig())


def test_a_callbacks_should_stop_is_seen_after_every_step_without_waiting_for_the_next_read(toy):
    """Cancel while the loop reads the device every 16 steps: the run stops after the step it was seen."""

    class Cancel:
        def __init__(self):
            self.checks, self.reported = 0, []

        def should_stop(self):  # a Cancel button clicked during step 5
            self.checks += 1
            return self.checks >= 5

        def __call__(self, step, total, text, sim):
            self.reported.append(step)
            return self.checks >= 5

    cancel = Cancel()
    result = core.invert(toy, PICTURES[:1], core.PEZConfig(prompt_len=4, steps=100, sync_every=16), cancel)
    assert cancel.checks == 5 and cancel.reported == [1]  # 5 steps ran; the first one read back asked to stop
    assert result.stop_reason == "callback" and result.steps == 1 and result.text
