"""Shared fixtures. Torch runs on one thread: on a busy 2-core machine two OpenMP threads were ~60× slower."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Test files that need a real host (ComfyUI, Forge / AUTOMATIC1111), a browser, a Ray cluster, or that run real
# optimisation / generation for minutes: marked ``slow``, so ``python -m pytest -q -m "not slow"`` is a quick subset
# (README, "Developing"); a few long tests elsewhere carry @pytest.mark.slow themselves. The full command runs them
# all; the host ones skip, with the reason, where no host is set.
SLOW_FILES = {
    "test_comfyui_host.py", "test_comfyui_browser.py", "test_comfy_native.py", "test_comfy_native_host.py",
    "test_pick_host.py", "test_node_schema.py",              # a real ComfyUI (COMFYUI_DIR), a browser
    "test_webui_host.py", "test_webui_checkpoint.py",        # a real Forge / AUTOMATIC1111 (FORGE_DIR, A1111_DIR)
    "test_quality.py", "test_lm_quality.py", "test_guided.py", "test_fluency.py",  # real optimisation, measured bars
    "test_methods.py",                                        # every method and the paper's baselines compared
    "test_generate.py", "test_eval.py", "test_pick.py",      # the toy text-to-image model generating pictures
    "test_batch_ray.py",                                      # a local Ray cluster
    "test_install.py", "test_wheel.py",                       # pip in a subprocess
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: needs a real host, a browser or Ray, or runs for minutes; "
                                       "deselect with -m 'not slow' (the quick subset)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def toy_lm_small():
    """The bundled toy LM on CLIP's tokenizer (fluency, LM prompt tuning, guided decoding); needs transformers."""
    pytest.importorskip("transformers", reason="the toy LMs need transformers: pip install -e '.[lm]'")
    from pez_nodes.lm.load import load_lm

    return load_lm("toy_lm_small")


@pytest.fixture(scope="session")
def toy_lm_large():
    """The larger toy LM: a judge (or transfer target) that another LM's prompts were not tuned with."""
    pytest.importorskip("transformers", reason="the toy LMs need transformers: pip install -e '.[lm]'")
    from pez_nodes.lm.load import load_lm

    return load_lm("toy_lm_large")


@pytest.fixture(scope="session")
def comfy_model_files(tmp_path_factory):
    """Full-size CLIP files with random weights (``comfy_files``), written once per session (~30 s, 4.5 GB of disk,
    removed when the session ends, passed or not):
    ``vit_l`` (open_clip ViT-L-14-quickgelu, text + vision), ``sd15`` (its text half as SD 1.5 holds it: no
    text_projection), ``vit_h`` (open_clip ViT-H-14, text + vision), ``g`` (bigG's text tower), ``t5`` (a T5-XXL
    stub: Flux's and SD3's CLIP classes load from it, PEZ never reads it)."""
    import shutil

    d = tmp_path_factory.mktemp("comfy_models")
    try:
        yield _write_comfy_model_files(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _write_comfy_model_files(d):
    from types import SimpleNamespace

    from comfy_files import write_bigg_text_encoder, write_open_clip, write_sd15_text_encoder, write_t5xxl_stub

    vit_l, l_model = write_open_clip("ViT-L-14-quickgelu", d / "vit_l_14.safetensors", seed=1)
    sd15 = write_sd15_text_encoder(l_model, d / "clip_l_sd15.safetensors")
    del l_model
    vit_h, _ = write_open_clip("ViT-H-14", d / "vit_h_14.safetensors", seed=2)
    g = write_bigg_text_encoder(d / "clip_g.safetensors", seed=3)
    t5 = write_t5xxl_stub(d / "t5xxl_stub.safetensors")
    return SimpleNamespace(dir=d, vit_l=str(vit_l), sd15=str(sd15), vit_h=str(vit_h), g=str(g), t5=str(t5))
