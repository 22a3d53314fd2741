"""No pickle is unpickled by default — on open_clip 2.20 (no ``weights_only``) and 3.x, from the core and from
ComfyUI's PEZ Load CLIP node (whose ``custom_model`` a workflow sets over an unauthenticated API).

Each case loads from a Hugging Face hub cache laid out in a temp dir (``models--ORG--REPO/refs/main`` +
``snapshots/<hash>/...``) with the hub offline, in a fresh process. Every ``.bin`` there is a torch checkpoint
whose unpickling creates a marker file, and that process runs ``torch.load`` as torch < 2.6 did (unpickling
anything unless told ``weights_only``), as on the hosts that pin open_clip 2.20. ``torch.load`` and
``torch.jit.load`` are watched: a pickle may reach them only with ``weights_only=True``.

.ci/oldest_open_clip.sh runs this file on open_clip 2.20.0 too.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pez_nodes.core import TOY_DIR

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REAL_TAG = ("ViT-B-32", "laion2b_s34b_b79k")  # open_clip's record: hf_hub laion/CLIP-ViT-B-32-laion2B-s34B-b79K/


class _Payload:
    """Unpickled, it opens (so creates) a file: what a malicious checkpoint could do with any code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _hub_repo(cache: Path, repo: str, files: dict[str, Path | bytes]) -> Path:
    """``repo``'s files in the hub cache layout (refs/main → a snapshot holding them); returns the snapshot."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, snapshot / name)
        else:
            (snapshot / name).write_bytes(content)
    return snapshot


PROBE = r"""
import json, sys
from pathlib import Path
import torch

marker, work = Path(sys.argv[1]), Path(sys.argv[2])
calls = []
real_load, real_jit = torch.load, torch.jit.load

def load(f, *args, **kwargs):
    calls.append({"file": str(f), "weights_only": kwargs.get("weights_only")})
    return real_load(f, *args, **kwargs)

def jit_load(f, *args, **kwargs):
    calls.append({"file": str(f), "weights_only": "jit"})
    return real_jit(f, *args, **kwargs)

torch.load, torch.jit.load = load, jit_load

import open_clip
from open_clip.pretrained import _PRETRAINED, _pcfg
from pez_nodes.comfy import node_bodies
from pez_nodes.core import TOY_DIR, load_clip

# a tiny architecture with two pretrained tags on the hub, as open_clip's own table records them
cfg = json.loads((TOY_DIR / "open_clip_config.json").read_text())["model_cfg"]
(work / "pez-tiny.json").write_text(json.dumps(cfg))
open_clip.add_model_config(work / "pez-tiny.json")
_PRETRAINED["pez-tiny"] = {"pickled": _pcfg(hf_hub="pez-test/tiny-pickled/"),
                          "safe": _pcfg(hf_hub="pez-test/tiny-safe/"),
                          "openai": _pcfg(url="https://openaipublic.invalid/clip/pez-tiny.pt")}  # as 2.x's openai tags
from pez_nodes.core.clip import loading
loading.OPENAI_HUB["pez-tiny"] = "pez-test/tiny-openai/"  # as timm/vit_*_clip_224.openai for the real ones
toy = load_clip("toy").token_embedding
local_bin = work / "folder" / "open_clip_pytorch_model.bin"

cases = {
    "tag, .bin in the hub cache": lambda: load_clip("pez-tiny", "pickled"),
    "real tag, .bin in the hub cache": lambda: load_clip(*sys.argv[3:5]),
    "hf-hub, .bin in the hub cache": lambda: load_clip("hf-hub:pez-test/tiny-pickled"),
    "openai tag": lambda: load_clip("ViT-B-32", "openai"),
    "openai tag, hub .safetensors cached": lambda: load_clip("pez-tiny", "openai"),
    "node: custom_model hf-hub": lambda: node_bodies.load_model("toy", "cpu",
                                                          custom_model="hf-hub:pez-test/tiny-pickled"),
    "node: custom_model + tag": lambda: node_bodies.load_model("toy", "cpu", custom_model="pez-tiny", pretrained="pickled"),
    "node: pretrained .bin file": lambda: node_bodies.load_model("toy", "cpu", custom_model="pez-tiny",
                                                           pretrained=str(local_bin)),
    "node: folder with a .bin": lambda: node_bodies.load_model("toy", "cpu", custom_model=str(work / "folder")),
    "node: allow_pickle input": lambda: node_bodies.load_model("toy", "cpu", custom_model="hf-hub:pez-test/tiny-pickled",
                                                         allow_pickle=True),
    "tag, .safetensors in the hub cache": lambda: load_clip("pez-tiny", "safe"),
    "hf-hub, .safetensors in the hub cache": lambda: load_clip("hf-hub:pez-test/tiny-safe"),
    "control: allow_pickle=True": lambda: load_clip("hf-hub:pez-test/tiny-pickled", allow_pickle=True),
}
out = {}
for name, case in cases.items():
    calls.clear()
    marker.unlink(missing_ok=True)  # each case's own outcome
    try:
        clip = case()
        result, same = "loaded", bool((clip.token_embedding - toy).abs().max() == 0)
    except Exception as e:
        result, same = f"{type(e).__name__}: {e}", None
    out[name] = {"result": result, "same_as_toy": same, "marker": marker.exists(), "loads": list(calls)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """Every case's outcome: {name: {result, same_as_toy, marker, loads}}."""
    tmp = tmp_path_factory.mktemp("pickles")
    marker, cache, work = tmp / "unpickled-code-ran", tmp / "hub", tmp / "work"
    work.mkdir()
    evil = tmp / "evil.bin"
    torch.save({"state_dict": {"x": torch.zeros(2)}, "payload": _Payload(marker)}, evil)
    config, weights = TOY_DIR / "open_clip_config.json", TOY_DIR / "open_clip_model.safetensors"
    _hub_repo(cache, "pez-test/tiny-pickled", {"open_clip_config.json": config, "open_clip_pytorch_model.bin": evil})
    _hub_repo(cache, "pez-test/tiny-safe", {"open_clip_config.json": config, "open_clip_pytorch_model.bin": evil,
                                            "open_clip_model.safetensors": weights})
    _hub_repo(cache, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", {"open_clip_pytorch_model.bin": evil})
    _hub_repo(cache, "pez-test/tiny-openai", {"open_clip_pytorch_model.bin": evil,
                                             "open_clip_model.safetensors": weights})
    (work / "folder").mkdir()
    shutil.copy(config, work / "folder" / "open_clip_config.json")
    shutil.copy(evil, work / "folder" / "open_clip_pytorch_model.bin")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp / "hf-home"), "HF_HUB_OFFLINE": "1",
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    env.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
    done = subprocess.run([sys.executable, "-c", PROBE, str(marker), str(work), *REAL_TAG], capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _safe_loader() -> bool:
    """Whether this open_clip's ``create_model`` takes ``weights_only`` (3.x; 2.20 does not)."""
    import open_clip

    return "weights_only" in inspect.signature(open_clip.create_model).parameters


REFUSED_REMOTE = ["tag, .bin in the hub cache", "real tag, .bin in the hub cache", "hf-hub, .bin in the hub cache",
                  "node: custom_model hf-hub", "node: custom_model + tag"]


def _pickle_loads(outcome: dict) -> list[dict]:
    return [c for c in outcome["loads"] if not c["file"].endswith(".safetensors")]


@pytest.mark.parametrize("case", REFUSED_REMOTE)
def test_cached_bin_of_a_tag_or_hub_model_is_never_unpickled(probe, case):
    outcome = probe[case]
    message = outcome["result"]
    assert message.startswith("ModelLoadError: ") and "\n" not in message, message
    assert not outcome["marker"], f"{case}: the pickle's code ran"
    if _safe_loader():  # open_clip 3.x reads the .bin with torch's weights_only loader, which refuses the payload
        assert "safe loader refused" in message and "io.open" in message and "allow_pickle" in message, message
        assert _pickle_loads(outcome) and all(c["weights_only"] is True for c in _pickle_loads(outcome)), outcome
    else:  # open_clip 2.20 would torch.load it plainly: refused before it is opened
        assert "would unpickle" in message and "open_clip_pytorch_model.bin" in message, message
        assert ".safetensors" in message and "allow_pickle=True" in message, message
        assert "cannot be reached" in message, message  # offline: no .safetensors cached, none downloadable
        assert not _pickle_loads(outcome), outcome


def test_openai_tag_comes_from_the_hubs_safetensors_never_the_pt(probe):
    """open_clip 2.20 has only OpenAI's TorchScript/pickle ``.pt`` URL for the openai tags: PEZ reads the hub copy
    open_clip 3.x uses (``timm/vit_*_clip_224.openai``) as ``.safetensors`` instead — offline here, so nothing
    of it to download — and never the ``.pt``; with that copy cached, the tag loads (on 2.20: the table's repo)."""
    outcome = probe["openai tag"]
    message = outcome["result"]
    assert message.startswith("ModelLoadError: ") and "\n" not in message, message
    assert "could not download" in message, message
    assert not _pickle_loads(outcome) and not outcome["marker"]
    if not _safe_loader():
        cached = probe["openai tag, hub .safetensors cached"]
        assert cached["result"] == "loaded" and cached["same_as_toy"], cached
        assert not cached["marker"] and not _pickle_loads(cached)


@pytest.mark.parametrize("case, words", [("node: pretrained .bin file", "is a pickle"),
                                         ("node: folder with a .bin", "found pickled open_clip_pytorch_model.bin")])
def test_node_refuses_local_pickles(probe, case, words):
    outcome = probe[case]
    assert outcome["result"].startswith("ModelLoadError: ") and words in outcome["result"], outcome["result"]
    assert "\n" not in outcome["result"] and not outcome["marker"] and not _pickle_loads(outcome)


def test_node_has_no_allow_pickle_input(probe):
    outcome = probe["node: allow_pickle input"]
    assert outcome["result"].startswith("ValueError: PEZ Load CLIP has no input 'allow_pickle'"), outcome["result"]
    assert ".safetensors" in outcome["result"] and not outcome["marker"] and not outcome["loads"]


@pytest.mark.parametrize("case", ["tag, .safetensors in the hub cache", "hf-hub, .safetensors in the hub cache"])
def test_hub_safetensors_beside_a_bin_load_and_the_bin_is_left_alone(probe, case):
    outcome = probe[case]
    assert outcome["result"] == "loaded" and outcome["same_as_toy"], outcome
    assert not outcome["marker"] and not _pickle_loads(outcome)


def test_control_the_bin_does_run_code_when_pickles_are_allowed(probe):
    """Proves the cases above could have failed: with allow_pickle=True the same file runs its payload."""
    assert probe["control: allow_pickle=True"]["marker"]
