"""ComfyUI's prompt syntax, as far as PEZ's prompts meet it: CLIPTextEncode reads ``(text:1.2)`` as a weight,
so a learned prompt going into it has its parentheses escaped, and a prompt coming from it is unescaped.

Standard library only and importing nothing of the package, so every module of ``pez_nodes.comfy`` (the node
bodies, the nodes, the workflow CLIP's tokenizer) can use it without an import circle.
"""

from __future__ import annotations


def for_text_encode(text: str) -> str:
    """A prompt as CLIPTextEncode must receive it: ``(`` and ``)`` escaped, or ComfyUI reads them as weights."""
    return text.replace("(", r"\(").replace(")", r"\)")


def from_text_encode(text: str) -> str:
    """The plain text of a prompt written for CLIPTextEncode (escaped parentheses unescaped)."""
    return text.replace(r"\(", "(").replace(r"\)", ")")
