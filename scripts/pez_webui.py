"""PEZ as an AUTOMATIC1111 / Forge extension: this is the only file the webui loads from ``scripts/``.

It adds the PEZ tab (``pez_nodes/webui/tab.py``), mounts ``/pez/v1/invert``, ``/pez/v1/distill``,
``/pez/v1/concat`` and ``/pez/v1/unload`` beside the webui's API when it serves one (``--api``; with
``--api-auth``'s check — ``pez_nodes/webui/routes.py``), adds the owner's limits to Settings → PEZ
(``limits.py``) and adds the txt2img script "PEZ: prompt from image". Every PEZ run holds the webui's queue
lock, as a generation does; its cached models go when the webui frees memory (``memory.py``). CLIPs are
listed from ``models/open_clip``, and the webui's own checkpoint can serve as the CLIP with an image encoder
from ``models/clip_vision``. The work is the core's; the defaults are the core's (``task_defaults``).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import gradio as gr  # noqa: E402
from modules import call_queue, paths, processing, progress, script_callbacks, scripts, sd_models, shared  # noqa: E402

from pez_nodes.core import task_defaults  # noqa: E402
from pez_nodes.webui import clip_vision, limits, memory, model_choices, routes, tab  # noqa: E402
from pez_nodes.webui.progress import WebuiProgress  # noqa: E402

try:  # AUTOMATIC1111 >= 1.8 and Forge; older AUTOMATIC1111 names it generation_parameters_copypaste
    from modules import infotext_utils as paste
except ImportError:  # pragma: no cover - older webuis
    from modules import generation_parameters_copypaste as paste

FOLDER = model_choices.models_folder(paths.models_path)
VISION_FOLDER = clip_vision.folder(paths.models_path)
routes.configure(shared.state, FOLDER, VISION_FOLDER, call_queue.queue_lock, lambda: limits.from_options(shared.opts))
try:  # Forge's memory manager; AUTOMATIC1111 has none (its sd_models.unload_model_weights is hooked instead)
    from backend import memory_management
except ImportError:
    memory_management = None
print(f"PEZ: its cached models are released when the webui frees memory "
      f"({', '.join(memory.install(sd_models, memory_management, script_callbacks)) or 'no hook found'})")


def _on_app_started(demo, app):
    routes.mount(app, api_auth=bool(getattr(shared.cmd_opts, "api_auth", None)))


def _on_ui_settings():
    limits.register(shared)


def _send_buttons(prompt_box):
    """"Send to txt2img / img2img": the webui's own paste buttons, fed the learned prompt."""
    for name, button in paste.create_buttons(["txt2img", "img2img"]).items():
        paste.register_paste_params_button(paste.ParamBinding(paste_button=button, tabname=name,
                                                              source_text_component=prompt_box))


def _on_ui_tabs():
    return [(tab.build(shared.state, FOLDER, _send_buttons, progress, VISION_FOLDER), "PEZ", "pez")]


script_callbacks.on_app_started(_on_app_started)
script_callbacks.on_ui_settings(_on_ui_settings)
script_callbacks.on_ui_tabs(_on_ui_tabs)


class PEZPromptFromImage(scripts.Script):
    """txt2img: learn a prompt from an image with PEZ (a listed CLIP or a named one), then generate with it."""

    def title(self):
        return "PEZ: prompt from image"

    def show(self, is_img2img):
        return not is_img2img

    def ui(self, is_img2img):
        image = gr.Image(label="Image to turn into a prompt", type="pil")
        model = gr.Dropdown(model_choices.choices(FOLDER), value=model_choices.choices(FOLDER)[0],
                            label="CLIP (or type an open_clip name below)")
        custom = gr.Textbox(label="…or an open_clip name, hf-hub:org/repo or a path (where Settings → PEZ allows "
                                  "any CLIP)")
        default = task_defaults("invert")  # pez invert's and PEZ Invert's: stops early once the prompt settles
        prompt_len = gr.Slider(1, 75, value=default["prompt_len"], step=1, label="Prompt tokens")
        steps = gr.Slider(10, 3000, value=default["steps"], step=10,
                          label=f"PEZ steps (at most; stops after {default['patience']} without a better prompt)")
        vision = gr.Dropdown(clip_vision.choices(VISION_FOLDER), value=clip_vision.NONE,
                             label="CLIP Vision (models/clip_vision) for the webui checkpoint")
        return [image, model, prompt_len, steps, custom, vision]

    def run(self, p, image, model, prompt_len, steps, custom="", vision=clip_vision.NONE):
        from pez_nodes.core import invert, task_config
        from pez_nodes.webui.request import check_model

        from PIL import Image

        if image is None:
            raise ValueError("PEZ: give an image to learn the prompt from.")
        if not isinstance(image, Image.Image):  # script_args from the API: a picture only, never a path
            raise ValueError("PEZ: the image must be a picture given in the txt2img page; use /pez/v1/invert from "
                             "the API.")
        owner = limits.from_options(shared.opts)
        choice = check_model({"model": (custom or "").strip() or model or "toy", "clip_vision": vision}, owner,
                             FOLDER, VISION_FOLDER)  # script_args reach the API too: the same rule as the routes
        config = task_config("invert", prompt_len=int(prompt_len), steps=min(int(steps), owner.max_steps)).validate()
        # txt2img already holds the webui's queue: PEZ runs inside its job, and holds the model while it does
        with routes.model_lock():
            clip = routes.load_model(choice)
            with WebuiProgress(shared.state, config.steps, own_job=False) as progress:
                result = invert(clip, [image], config, progress)
        p.prompt = routes.for_webui_prompt(result.text)  # its ( ) [ ] are not emphasis
        p.all_prompts = None
        processed = processing.process_images(p)
        processed.info = f"PEZ prompt: {result.text} (similarity {result.similarity:.4f})\n" + (processed.info or "")
        return processed
