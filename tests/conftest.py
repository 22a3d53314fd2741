"""Shared fixtures. Torch runs on one thread: on a busy 2-core machine two OpenMP threads were ~60× slower."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy():
    """The bundled toy CLIP, loaded once per test session: PEZ may pick any of the 49,406 ordinary tokens."""
    from pez_nodes.core import load_clip

    return load_clip("toy")


@pytest.fixture(scope="session")
def toy_declared():
    """The toy CLIP restricted to the words its folder declares (``pez_vocabulary.txt``), an opt-in."""
    from pez_nodes.core import load_clip

    return load_clip("toy", vocabulary="declared")
