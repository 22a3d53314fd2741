"""ComfyUI entry point: registers the PEZ nodes (V3 schema). The code lives in ``pez_nodes/``.

Outside ComfyUI (e.g. when pytest imports this folder as a package) there is nothing to register.
"""

import importlib.util

WEB_DIRECTORY = "./javascript"  # pez.js: maps a workflow saved before PEZ Options onto the nodes' new inputs

if importlib.util.find_spec("comfy_api") is not None:
    from .pez_nodes.comfy.nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint"]
