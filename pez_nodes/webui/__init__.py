"""PEZ in AUTOMATIC1111's webui and Forge: the PEZ tab, the HTTP routes, the progress adapter, the CLIP lists,
and the webui's own checkpoint as the model (``checkpoint_clip``, with ``clip_vision`` files).

``scripts/pez_webui.py`` (the only file in ``scripts/``, which the webuis load) mounts ``routes`` on the
webui's FastAPI app, adds the tab and passes ``modules.shared.state``; only ``checkpoint_clip.loaded_model``
imports the webui's ``modules`` (when the checkpoint is chosen), and nothing here imports it at import time.
"""
