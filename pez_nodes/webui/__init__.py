"""PEZ in AUTOMATIC1111's webui and Forge: the HTTP routes and the progress adapter.

``scripts/pez_webui.py`` (the only file in ``scripts/``, which the webuis load) mounts ``routes`` on the
webui's FastAPI app and passes ``modules.shared.state``; nothing here imports the webui.
"""
