"""ComfyUI front end. ``logic``, ``host`` and ``model_list`` import without ComfyUI; ``nodes`` needs it."""
