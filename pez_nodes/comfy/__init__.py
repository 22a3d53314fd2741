"""ComfyUI front end. ``node_bodies``, ``host``, ``model_choices`` and ``prompt_syntax`` import without ComfyUI; ``nodes`` needs it."""
