"""ComfyUI front end. ``node_bodies``, ``host`` and ``model_choices`` import without ComfyUI; ``nodes`` needs it."""
