"""The core's callback as the webui's progress: ``shared.state`` counters, the live best prompt, Interrupt.

The webui's progress bar and ``/sdapi/v1/progress`` read ``state.sampling_step / sampling_steps`` and
``state.textinfo``; ``/sdapi/v1/interrupt`` (and the Interrupt button) set ``state.interrupted``, which this
callback returns, so the core stops within one step and keeps the best prompt so far.
"""

from __future__ import annotations


class WebuiProgress:
    def __init__(self, state, steps: int, job: str = "pez"):
        self.state, self.steps, self.job = state, steps, job

    def __enter__(self) -> "WebuiProgress":
        self.state.begin(job=self.job)
        self.state.job_count = 1
        self.state.sampling_steps = self.steps
        self.state.sampling_step = 0
        return self

    def __call__(self, step: int, total: int, text: str, similarity: float) -> bool:
        self.state.sampling_step, self.state.sampling_steps = step, total
        self.state.textinfo = f"PEZ {step}/{total}  similarity {similarity:.4f}  {text}"
        return bool(self.state.interrupted)

    def __exit__(self, *exc) -> None:
        self.state.end()
