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
import json, sys, time
from pez_nodes.core import ModelLoadError, load_clip
out = []
for source, tag in (("ViT-B-32", "laion2b_s34b_b79k"), ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)):
    start = time.monotonic()
    try:
        load_clip(source, tag, cache_dir=sys.argv[1])
        out.append(["loaded", time.monotonic() - start, None])
    except ModelLoadError as e:
        out.append([str(e), time.monotonic() - start, e.download])
print(json.dumps(out))
"""


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: a connection there is refused at once


def _offline_env(tmp_path, how: str) -> dict:
    """A fresh process's environment with an empty Hugging Face cache and no model hub, three ways: switched off
    (HF_HUB_OFFLINE=1), refusing connections (a closed local port), or answering nothing (a TEST-NET address,
    RFC 5737, which no machine routes: the connect waits until the check's timeout, or fails at once offline)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update({"HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"})
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY", "http_proxy", "HTTP_PROXY"):
        env.pop(key, None)
    if how == "switched off":
        env["HF_HUB_OFFLINE"] = "1"
    elif how == "refused":
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    else:
        env["HF_ENDPOINT"] = "https://192.0.2.1"
    return env


@pytest.mark.parametrize("how", ["switched off", "refused", "silent"])
def test_offline_download_fails_with_one_line_pointing_to_toy(tmp_path, how):
    """No model hub (in a fresh process, before huggingface_hub reads its environment) and an empty cache, so the
    result does not depend on this machine's network or on weights cached earlier: each remote model fails within
    seconds (a 3 s reachability check, then no retries), in one line, with no wall of retry warnings on stderr."""
    done = subprocess.run([sys.executable, "-c", OFFLINE_PROBE, str(tmp_path / "cache")], capture_output=True,
                          text=True, env=_offline_env(tmp_path, how), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for message, seconds, download in results:
        assert "could not download" in message and "bundled model (toy)" in message and "\n" not in message, message
        assert seconds < 10, (seconds, message)
        assert download and download["url"] and download["files"] and download["model"] in message, download
    assert sum(seconds for _, seconds, _ in results) < 10, results
    assert "/laion/CLIP-ViT-B-32-laion2B-s34B-b79K)" in results[0][0]  # where the tag's weights are (HF_ENDPOINT)
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr  # no "Retrying in 1s [Retry 1/5]" wall
    assert "Retry" not in done.stderr, done.stderr


CACHED_PROBE = """
import json, sys, time
from pez_nodes.core import load_clip
start = time.monotonic()
clip = load_clip("hf-hub:pez-test/toy-clip")
print(json.dumps([clip.name, time.monotonic() - start, clip.token_embedding.sum().item()]))
"""


def _hub_cache_snapshot(hub_cache, repo: str, files: dict) -> None:
    """``files`` as huggingface_hub's cache keeps a downloaded repo: blobs, a snapshot of links, refs/main."""
    import hashlib

    root = hub_cache / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for name, source in files.items():
        data = source.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_a_model_in_the_hub_cache_still_loads_without_network(tmp_path, how):
    """A hub model downloaded earlier (here: the toy CLIP, laid out as huggingface_hub caches a download) loads
    with no network and HF_HUB_OFFLINE unset: the unreachable hub is noticed and the cache used, within seconds."""
    env = _offline_env(tmp_path, how)
    _hub_cache_snapshot(tmp_path / "hf" / "hub", "pez-test/toy-clip",
                        {"open_clip_config.json": TOY_DIR / "open_clip_config.json",
                         "open_clip_model.safetensors": TOY_DIR / "open_clip_model.safetensors"})
    done = subprocess.run([sys.executable, "-c", CACHED_PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    name, seconds, total = json.loads(done.stdout.strip().splitlines()[-1])
    assert name == "hf-hub:pez-test/toy-clip" and seconds < 10, (name, seconds)
    assert total == pytest.approx(load_clip("toy").token_embedding.sum().item())
    assert "Retry" not in done.stderr, done.stderr


def test_the_hub_check_tells_an_open_port_from_a_closed_one():
    import socket

    from pez_nodes.core.clip import loading

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert loading._unreachable(f"http://127.0.0.1:{listening.getsockname()[1]}") is None
    port = _closed_port()
    why = loading._unreachable(f"http://127.0.0.1:{port}")
    assert why == "127.0.0.1 cannot be reached (connection refused)", why


def test_the_hub_check_gives_up_after_its_timeout(monkeypatch):
    """A network that swallows packets (or a name lookup that hangs) costs the check's timeout, not the OS's."""
    import time

    from pez_nodes.core.clip import loading

    class Hanging:
        def __init__(self, *args, **kwargs):
            time.sleep(3)

        def close(self):
            pass

    monkeypatch.setattr(loading.socket, "create_connection", Hanging)
    start = time.monotonic()
    why = loading._unreachable("https://huggingface.co", timeout=0.5)
    assert why == "huggingface.co cannot be reached (no answer in 0.5 s)" and time.monotonic() - start < 2


def test_comfyuis_loader_says_which_file_goes_in_which_models_folder(tmp_path, monkeypatch):
    """ComfyUI's PEZ Load CLIP turns the core's offline error into its own line: the file, where to get it and where
    in models/open_clip to save it (named so the loader finds it), not a CLI flag."""
    from huggingface_hub import constants

    from pez_nodes.comfy import node_bodies

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError) as e:
        node_bodies.load_model("ViT-L-14 / openai (SD 1.5, downloads)", device="cpu")
    line = str(e.value)
    assert "\n" not in line and "--" not in line, line
    assert line.startswith("model ViT-L-14 / openai cannot be downloaded here (HF_HUB_OFFLINE switches the model hub "
                           "off on this machine) and is not in the cache; on a machine with a network, "), line
    assert ("download open_clip_model.safetensors from https://huggingface.co/timm/vit_large_patch14_clip_224.openai "
            f"and save it as {os.path.join('ComfyUI/models/open_clip', 'ViT-L-14-openai.safetensors')}") in line, line
    assert line.endswith("or choose 'toy (bundled, offline)'."), line
    with pytest.raises(ModelLoadError) as e:
        node_bodies.load_model("toy", custom_model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", device="cpu")
    assert ("download open_clip_config.json and open_clip_model.safetensors from "
            "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K into a folder "
            f"{os.path.join('ComfyUI/models/open_clip', 'CLIP-ViT-B-32-laion2B-s34B-b79K', '')}") in str(e.value)


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
