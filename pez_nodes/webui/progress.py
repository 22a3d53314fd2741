"""The core's callback as the webui's progress: ``shared.state`` counters, the live best prompt, Interrupt.

The webui's progress bar and ``/sdapi/v1/progress`` read ``state.sampling_step / sampling_steps`` and
``state.textinfo``; ``/sdapi/v1/interrupt`` (and the Interrupt button) set ``state.interrupted``, which this
callback returns, so the core stops within one step and keeps the best prompt so far.

A run of its own (the routes, the tab) holds the webui's queue lock and is a webui job: ``state.begin`` /
``state.end``, as the webui's own API does inside its lock. Inside another job (the txt2img script runs
inside txt2img's), ``own_job=False`` leaves the job alone and puts its step counters back afterwards.
"""

from __future__ import annotations


class WebuiProgress:
    def __init__(self, state, steps: int, job: str = "pez", own_job: bool = True, stop=None):
        self.state, self.steps, self.job, self.own_job = state, steps, job, own_job
        self.stop = stop  # () -> bool: this run's own cancel (the tab's Interrupt), besides the webui's
        self.saved: dict = {}

    def __enter__(self) -> "WebuiProgress":
        if self.state is None:
            return self
        if self.own_job:
            self.state.begin(job=self.job)
            self.state.job_count = 1
        else:
            self.saved = {k: getattr(self.state, k, None) for k in ("sampling_step", "sampling_steps", "textinfo")}
        self.state.sampling_steps = self.steps
        self.state.sampling_step = 0
        return self

    def __call__(self, step: int, total: int, text: str, similarity: float) -> bool:
        if self.stop is not None and self.stop():
            return True
        if self.state is None:
            return False
        self.state.sampling_step, self.state.sampling_steps = step, total
        self.state.textinfo = f"PEZ {step}/{total}  similarity {similarity:.4f}  {text}"
        return bool(self.state.interrupted)

    def should_stop(self) -> bool:
        """The tab's Interrupt or the webui's: checked by the core after every step, without waiting for the GPU."""
        return bool((self.stop is not None and self.stop()) or (self.state is not None and self.state.interrupted))

    def __exit__(self, *exc) -> None:
        if self.state is None:
            return
        if self.own_job:
            self.state.end()
        else:
            for k, v in self.saved.items():
                setattr(self.state, k, v)
