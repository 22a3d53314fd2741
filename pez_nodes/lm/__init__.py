"""PEZ for language models (the paper's Sec. 5): classification prompts for a causal LM, with fluency.

``task`` (examples, template, verbalizer), ``objective`` (the LM loss the core loop optimises) and
``tune`` (the loop + holdout selection). Needs ``transformers`` only for loading a model; the core and the
ComfyUI nodes never import this package.
"""
