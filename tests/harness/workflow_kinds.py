"""Which shipped workflows run anywhere: only the bundled toy CLIP, no model file a user must download first.

Read by the host tests (API format), the frontend tests and ``tools/screenshot_workflows.py`` (UI format).
"""

from __future__ import annotations

# Loaders that read the user's model files: a workflow with any of them is not run by the tests or the screenshots.
FILE_LOADERS = frozenset({"CheckpointLoaderSimple", "UNETLoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader",
                          "VAELoader", "CLIPVisionLoader"})


def _offline(types: set[str], pez_models: list[str]) -> bool:
    return not types & FILE_LOADERS and all(m.startswith("toy") for m in pez_models)


def offline_api(workflow: dict) -> bool:
    """An API-format workflow that needs no downloaded model."""
    return _offline({v["class_type"] for v in workflow.values()},
                    [v["inputs"]["model"] for v in workflow.values() if v["class_type"] == "PEZLoadCLIP"])


def offline_ui(workflow: dict) -> bool:
    """A UI-format workflow (as saved by the frontend) that needs no downloaded model."""
    return _offline({n["type"] for n in workflow["nodes"]},
                    [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "PEZLoadCLIP"])
