"""Model sources load through open_clip, and every failure is one clear error."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from pez_nodes.core import TOY_DIR, ModelLoadError, load_clip


def test_toy_uses_the_full_vocabulary_unless_the_declared_one_is_asked_for():
    assert load_clip("toy").vocabulary_ids is None
    declared = load_clip("toy", vocabulary="declared")
    words = (TOY_DIR / "pez_vocabulary.txt").read_text().split()
    assert sorted(declared.vocabulary_ids.tolist()) == sorted({i for w in words for i in declared.tokenize(w)})


def test_declared_vocabulary_without_a_file_names_the_fix(tmp_path):
    d = _copy_toy(tmp_path)
    (d / "pez_vocabulary.txt").unlink()
    assert load_clip(str(d)).vocabulary_ids is None
    with pytest.raises(ModelLoadError, match="declares no vocabulary.*vocabulary='full'"):
        load_clip(str(d), vocabulary="declared")


def test_unknown_vocabulary_choice_is_one_clear_error():
    with pytest.raises(ValueError, match="vocabulary 'all' is not 'full' or 'declared'") as e:
        load_clip("toy", vocabulary="all")
    assert "\n" not in str(e.value)


def test_toy_loads_by_short_name_folder_and_local_dir(tmp_path):
    a = load_clip("toy")
    b = load_clip(str(TOY_DIR))
    c = load_clip(f"local-dir:{TOY_DIR}")
    assert a.context_length == 77 and a.token_embedding.shape[0] == 49408
    for other in (b, c):
        assert (other.token_embedding - a.token_embedding).abs().max() == 0


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ModelLoadError, match="ViT-L-14"):
        load_clip("ViT-L-41", "openai")


def test_unknown_pretrained_tag_lists_known_tags():
    with pytest.raises(ModelLoadError, match="openai"):
        load_clip("ViT-L-14", "opneai")


OFFLINE_PROBE = """
import json, sys
from pez_nodes.core import ModelLoadError, load_clip
out = []
for source, tag in (("ViT-B-32", "laion2b_s34b_b79k"), ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)):
    try:
        load_clip(source, tag, cache_dir=sys.argv[1])
        out.append("loaded")
    except ModelLoadError as e:
        out.append(str(e))
print(json.dumps(out))
"""


def test_offline_download_fails_with_one_line_pointing_to_toy(tmp_path):
    """Hub offline (forced in a fresh process, before huggingface_hub reads it) and an empty cache, so the
    result does not depend on this machine's network or on weights cached earlier."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", OFFLINE_PROBE, str(tmp_path / "cache")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = json.loads(done.stdout.strip().splitlines()[-1])
    for message in messages:
        assert "could not download" in message and "bundled model (toy)" in message and "\n" not in message, message


def _copy_toy(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(TOY_DIR, d)
    return d


def test_missing_weights_are_refused_not_random(tmp_path):
    d = _copy_toy(tmp_path)
    (d / "open_clip_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no open_clip_model.safetensors"):
        load_clip(str(d))


def test_corrupt_weights_are_reported(tmp_path):
    d = _copy_toy(tmp_path)
    (d / "open_clip_model.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_clip(str(d))


def test_missing_config_is_reported(tmp_path):
    d = _copy_toy(tmp_path)
    (d / "open_clip_config.json").unlink()
    with pytest.raises(ModelLoadError, match="open_clip_config.json"):
        load_clip(str(d))


def test_pickled_weights_are_refused_by_default(tmp_path):
    d = _copy_toy(tmp_path)
    (d / "open_clip_model.safetensors").rename(d / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_clip(str(d))


def test_weights_file_as_model_is_explained(tmp_path):
    with pytest.raises(ModelLoadError, match="the file as pretrained"):
        load_clip(str(TOY_DIR / "open_clip_model.safetensors"))


def test_wrong_architecture_is_reported(tmp_path):
    d = _copy_toy(tmp_path)
    cfg = json.loads((d / "open_clip_config.json").read_text())
    cfg["model_cfg"]["text_cfg"]["width"] = 32
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="do not fit|size mismatch"):
        load_clip(str(d))


def test_empty_source_is_rejected():
    with pytest.raises(ModelLoadError, match="empty"):
        load_clip("  ")


def test_model_created_under_inference_mode_still_optimises():
    import torch

    from pez_nodes.core import PEZConfig, distill

    with torch.inference_mode():
        model = load_clip("toy")
        r = distill(model, "a red circle", PEZConfig(steps=3, prompt_len=2))
    assert r.steps == 3


@pytest.mark.parametrize("source", ["toy", "local-dir:{toy}", "{toy}", "hf-hub:org/repo"])
def test_pretrained_with_a_source_that_brings_weights_is_refused(source):
    from pez_nodes.core import TOY_DIR

    with pytest.raises(ModelLoadError, match="brings its own weights"):
        load_clip(source.format(toy=TOY_DIR), "openai")


@pytest.mark.parametrize("device, message", [("meta", "cannot run PEZ"), ("cuda:7", "cuda:7")])
def test_unusable_devices_are_refused(device, message):
    from pez_nodes.core import resolve_device

    with pytest.raises(ValueError, match=message):
        resolve_device(device)


def test_a_process_that_registers_a_config_leaves_no_temporary_folder(tmp_path):
    """A model folder's config is registered with open_clip through a temporary folder; the folder goes when
    the process exits (it was left in the temp folder, one a process)."""
    import subprocess
    import sys

    from pez_nodes.core import TOY_DIR

    code = ("from pez_nodes.core import load_clip; import sys; "
            "load_clip(sys.argv[1]); import pez_nodes.core.clip.architecture as a; print(a._CONFIG_DIR)")
    done = subprocess.run([sys.executable, "-c", code, str(TOY_DIR)],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(tmp_path)), done.stdout  # it did make one
    assert not list(tmp_path.glob("pez-config-*"))
