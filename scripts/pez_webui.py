"""PEZ as an AUTOMATIC1111 / Forge extension: this is the only file the webui loads from ``scripts/``.

It mounts ``/pez/v1/invert``, ``/pez/v1/distill`` and ``/pez/v1/concat`` on the webui's API
(``pez_nodes/webui/routes.py``) and adds the txt2img script "PEZ: prompt from image". The work is the core's.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import gradio as gr  # noqa: E402
from modules import processing, script_callbacks, scripts, shared  # noqa: E402

from pez_nodes.webui import routes  # noqa: E402
from pez_nodes.webui.progress import WebuiProgress  # noqa: E402


def _on_app_started(demo, app):
    routes.mount(app, shared.state)


script_callbacks.on_app_started(_on_app_started)


class PEZPromptFromImage(scripts.Script):
    """txt2img: learn a prompt from an image with PEZ (bundled toy CLIP or a named one), then generate with it."""

    def title(self):
        return "PEZ: prompt from image"

    def show(self, is_img2img):
        return not is_img2img

    def ui(self, is_img2img):
        image = gr.Image(label="Image to turn into a prompt", type="pil")
        model = gr.Textbox(label="CLIP (toy, or an open_clip name such as ViT-L-14)", value="toy")
        prompt_len = gr.Slider(1, 75, value=16, step=1, label="Prompt tokens")
        steps = gr.Slider(10, 3000, value=300, step=10, label="PEZ steps")
        return [image, model, prompt_len, steps]

    def run(self, p, image, model, prompt_len, steps):
        from pez_nodes.core import PEZConfig, invert

        if image is None:
            raise ValueError("PEZ: give an image to learn the prompt from.")
        clip = routes._model({"model": model or "toy"})
        with WebuiProgress(shared.state, int(steps)) as progress:
            result = invert(clip, [image], PEZConfig(prompt_len=int(prompt_len), steps=int(steps)), progress)
        p.prompt = result.text
        p.all_prompts = None
        processed = processing.process_images(p)
        processed.info = f"PEZ prompt: {result.text} (similarity {result.similarity:.4f})\n" + (processed.info or "")
        return processed
