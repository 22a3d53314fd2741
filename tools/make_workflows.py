"""Write ``workflows/``: each graph once, as ComfyUI's UI format, its API-format twin, and a PNG.

    python tools/make_workflows.py

The UI JSON (``workflows/<name>.json``) is what ComfyUI's template browser lists and what users
share; its API-format twin (``workflows/api/<name>.json``, a subfolder so the browser does not list
it) is what ``POST /prompt`` (and ``python -m pez_nodes.client``) accepts. The PNGs are screenshots
of the real frontend carrying the workflow: ``tools/screenshot_workflows.py`` makes them from these files.
Nodes are laid out in the columns and order ``graphs()`` gives them, with the sizes the real frontend
draws them at, so none overlaps another.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "workflows"

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.comfy.node_bodies import NEGATIVE_WEIGHT  # noqa: E402
from pez_nodes.core import PEZConfig  # noqa: E402

DEFAULTS = PEZConfig()

# Output slots (name, type) and widget names in the order ComfyUI's frontend shows them: the schema's required
# inputs, then its optional ones (tests/test_comfyui_browser.py opens each file in the real frontend and checks).
# A seed widget with control_after_generate is followed by its control value in widgets_values. The optimising
# nodes show only what most users change; PEZ Options holds the rest (javascript/pez.js maps the older orders).
PEZ_OPT = ["prompt_len", "steps", "seed", "@control", "method"]
OPTIONS = ["lr", "restarts", "patience", "blocklist", "ascii_only", "template", "bank", "negative_text", "negative_weight",
           "fluency", "beams", "candidates", "lm_weight", "start_text", "instruction"]
NODE_TYPES = {
    "PEZLoadCLIP": ([("pez_clip", "PEZ_CLIP")], ["model", "device", "custom_model", "pretrained", "activation",
                                                 "vocabulary"]),
    "PEZCLIPFromWorkflow": ([("pez_clip", "PEZ_CLIP")],
                            ["crop", "text_projection", "weight_clip_l", "weight_clip_g", "device"]),
    "PEZInvert": ([("prompt", "STRING"), ("similarity", "FLOAT")], PEZ_OPT + ["mode"]),
    "PEZDistill": ([("prompt", "STRING"), ("similarity", "FLOAT")], ["text"] + PEZ_OPT),
    "PEZPromptConcat": ([("prompt", "STRING"), ("similarity", "FLOAT")], ["text_a", "text_b"] + PEZ_OPT),
    "PEZOptions": ([("options", "PEZ_OPTIONS")], OPTIONS),
    "PEZLoadLM": ([("pez_lm", "PEZ_LM")], ["model", "device"]),
    "LoadImage": ([("IMAGE", "IMAGE"), ("MASK", "MASK")], ["image", "@upload"]),
    "ImageBatch": ([("IMAGE", "IMAGE")], []),
    "CheckpointLoaderSimple": ([("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], ["ckpt_name"]),
    "CLIPVisionLoader": ([("CLIP_VISION", "CLIP_VISION")], ["clip_name"]),
    "CLIPTextEncode": ([("CONDITIONING", "CONDITIONING")], ["text"]),
    "EmptyLatentImage": ([("LATENT", "LATENT")], ["width", "height", "batch_size"]),
    "KSampler": ([("LATENT", "LATENT")], ["seed", "@control", "steps", "cfg", "sampler_name", "scheduler", "denoise"]),
    "VAEDecode": ([("IMAGE", "IMAGE")], []),
    "SaveImage": ([], ["filename_prefix"]),
    "PEZImageSimilarity": ([("similarity", "FLOAT"), ("per_pair", "STRING")], ["crop"]),
    "UNETLoader": ([("MODEL", "MODEL")], ["unet_name", "weight_dtype"]),
    "DualCLIPLoader": ([("CLIP", "CLIP")], ["clip_name1", "clip_name2", "type", "device"]),
    "TripleCLIPLoader": ([("CLIP", "CLIP")], ["clip_name1", "clip_name2", "clip_name3"]),
    "VAELoader": ([("VAE", "VAE")], ["vae_name"]),
    "CLIPTextEncodeFlux": ([("CONDITIONING", "CONDITIONING")], ["clip_l", "t5xxl", "guidance"]),
    "CLIPTextEncodeSD3": ([("CONDITIONING", "CONDITIONING")], ["clip_l", "clip_g", "t5xxl", "empty_padding"]),
    "EmptySD3LatentImage": ([("LATENT", "LATENT")], ["width", "height", "batch_size"]),
}
INPUT_TYPES = {"pez_clip": "PEZ_CLIP", "images": "IMAGE", "image1": "IMAGE", "image2": "IMAGE", "clip": "CLIP",
               "model": "MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING", "latent_image": "LATENT",
               "samples": "LATENT", "vae": "VAE", "text": "STRING", "text_a": "STRING", "text_b": "STRING",
               "clip_vision": "CLIP_VISION", "clip_vision_2": "CLIP_VISION", "images_a": "IMAGE", "images_b": "IMAGE",
               "fluency_lm": "PEZ_LM", "guide_lm": "PEZ_LM", "clip_l": "STRING", "clip_g": "STRING", "t5xxl": "STRING",
               "options": "PEZ_OPTIONS", "negative_images": "IMAGE", "text_c": "STRING", "text_d": "STRING"}
TOY = "toy (bundled, offline)"
# OpenAI's clip-vit-large-patch14 model.safetensors, renamed, in models/clip_vision: SD 1.5's / SDXL's CLIP-L
# vision model, and the text projection their checkpoints leave out. (file, node title)
VIT_L = ("clip-vit-large-patch14.safetensors", "CLIP Vision (ViT-L/14)")
GUIDE_LM = "Qwen2.5-0.5B-Instruct/"  # the prompt-pair workflows' guiding LM: a transformers folder in models/LLM
FLUENCY = 0.03  # the fluency weight of the fluent workflow (README, "Fluent image prompts": measured there)


# (width, height) ComfyUI's frontend (1.27) draws each node at, measured in the page; a PEZ node that learns
# a prompt gets RESULT_ROOM more for its text box (the live best prompt, then the result), a LoadImage
# node room for its picture.
SIZES = {"PEZLoadCLIP": (300, 178), "PEZCLIPFromWorkflow": (300, 194), "PEZInvert": (400, 278),
         "PEZDistill": (400, 268), "PEZPromptConcat": (400, 362), "PEZOptions": (400, 424), "PEZLoadLM": (300, 82),
         "PEZImageSimilarity": (300, 118), "LoadImage": (300, 340), "ImageBatch": (160, 46),
         "CheckpointLoaderSimple": (300, 98), "CLIPVisionLoader": (300, 58), "CLIPTextEncode": (400, 200),
         "EmptyLatentImage": (300, 106), "KSampler": (300, 262), "VAEDecode": (160, 46), "SaveImage": (300, 270),
         "UNETLoader": (300, 82), "DualCLIPLoader": (300, 130), "TripleCLIPLoader": (300, 106), "VAELoader": (300, 58),
         "CLIPTextEncodeFlux": (400, 170), "CLIPTextEncodeSD3": (400, 224), "EmptySD3LatentImage": (300, 106)}
RESULT_ROOM = 110
GAP = (60, 40)  # between columns, between nodes of a column


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)  # input name -> (node, output slot)
    title: str | None = None


def pez_widgets(prompt_len=8, steps=300, seed=0, method="pez") -> dict:
    return {"prompt_len": prompt_len, "steps": steps, "seed": seed, "method": method}


def invert_widgets(mode: str = "shared", **kw) -> dict:
    return {**pez_widgets(**kw), "mode": mode}


def options(node_id: int, pos, title: str | None = None, **changes) -> Node:
    """A PEZ Options node: PEZConfig's defaults (what a PEZ node without one runs with), but ``changes``."""
    unset = {"blocklist": "", "template": "", "bank": "", "negative_text": "", "negative_weight": NEGATIVE_WEIGHT,
             "start_text": "", "instruction": ""}  # the widgets' "not set" (PEZConfig: None or ())
    widgets = {k: unset[k] if k in unset else getattr(DEFAULTS, k) for k in OPTIONS}
    return Node(node_id, "PEZOptions", pos, {**widgets, **changes}, title=title)


def one_restart(node_id: int, pos) -> Node:
    """The real-model workflows' PEZ Options: one restart (the paper's prompt_bs), stop after 300 steps without gain."""
    return options(node_id, pos, "PEZ Options (1 restart, patience 300)", restarts=1, patience=300)


def loader(node_id: int, pos=(40, 60), model=TOY) -> Node:
    """PEZ Load CLIP; the toy CLIP with its declared vocabulary (the 20 words it was trained on: prompts that name
    the picture's subject and colour in 10 of 10 seeds, measured in docs/toy-models.md, against 0 of 10 with the
    full vocabulary at 8 tokens)."""
    vocabulary = "declared" if model == TOY else "full"
    return Node(node_id, "PEZLoadCLIP", pos, {"model": model, "device": "auto", "custom_model": "", "pretrained": "",
                                              "activation": "auto", "vocabulary": vocabulary})


def image(node_id: int, name: str, pos) -> Node:
    return Node(node_id, "LoadImage", pos, {"image": name})


def sampler_half(first_id: int, ckpt: int, prompt: Node, size: int, x: int) -> list[Node]:
    """CLIPTextEncode (the PEZ prompt) + a negative → EmptyLatentImage → KSampler → VAEDecode → SaveImage.

    ``ckpt`` is the CheckpointLoaderSimple's id (MODEL, CLIP, VAE); columns start at ``x``, 380 apart.
    Paper settings: cfg 9, 25 steps.
    """
    i = first_id
    return [
        Node(i, "CLIPTextEncode", (x, 60), {"text": ""}, {"clip": (ckpt, 1), "text": (prompt.id, 0)},
             "Positive (PEZ prompt)"),
        Node(i + 1, "CLIPTextEncode", (x, 260), {"text": "blurry, low quality"}, {"clip": (ckpt, 1)}, "Negative"),
        Node(i + 2, "EmptyLatentImage", (x, 460), {"width": size, "height": size, "batch_size": 1}),
        Node(i + 3, "KSampler", (x + 380, 60), {"seed": 0, "steps": 25, "cfg": 9.0, "sampler_name": "dpmpp_2m",
                                                "scheduler": "karras", "denoise": 1.0},
             {"model": (ckpt, 0), "positive": (i, 0), "negative": (i + 1, 0), "latent_image": (i + 2, 0)}),
        Node(i + 4, "VAEDecode", (x + 760, 60), {}, {"samples": (i + 3, 0), "vae": (ckpt, 2)}),
        Node(i + 5, "SaveImage", (x + 760, 240), {"filename_prefix": "pez"}, {"images": (i + 4, 0)}),
    ]


def workflow_clip(ckpt_name: str, visions: list[tuple[str, str]], projection: str, size: int) -> list[Node]:
    """Checkpoint → CLIP Vision loader(s) → PEZ CLIP from Workflow → PEZ Invert → the checkpoint's sampler
    → PEZ Image Similarity (target vs generated, judged with the first CLIP Vision model: the paper's metric).

    ``visions``: (file in models/clip_vision, node title) for ``clip_vision`` and, for SDXL, ``clip_vision_2``.
    """
    nodes = [Node(1, "CheckpointLoaderSimple", (40, 60), {"ckpt_name": ckpt_name})]
    links = {"clip": (1, 1)}
    for k, (file, title) in enumerate(visions):
        nodes.append(Node(2 + k, "CLIPVisionLoader", (40, 260 + 200 * k), {"clip_name": file}, title=title))
        links["clip_vision" if k == 0 else f"clip_vision_{k + 1}"] = (2 + k, 0)
    i = 2 + len(visions)
    pez = Node(i, "PEZCLIPFromWorkflow", (420, 60), {"crop": "center", "text_projection": projection,
                                                     "weight_clip_l": 1.0, "weight_clip_g": 1.0, "device": "auto"},
               links)
    picture_in = image(i + 1, "pez_example.png", (420, 380))
    invert = Node(i + 2, "PEZInvert", (800, 60), invert_widgets(prompt_len=16, steps=1000),
                  {"pez_clip": (i, 0), "images": (i + 1, 0), "options": (i + 10, 0)})
    sampler = sampler_half(i + 3, 1, invert, size, 1180)
    decode = sampler[4]  # VAEDecode: the generated image
    similarity = Node(i + 9, "PEZImageSimilarity", (1940, 460), {"crop": "center"},
                      {"images_a": (picture_in.id, 0), "images_b": (decode.id, 0), "clip_vision": (2, 0)},
                      "Target vs generated (the paper's metric)")
    return [*nodes, pez, picture_in, invert, *sampler, similarity, one_restart(i + 10, (40, 900))]


def prompt_pair(kind: str) -> list[Node]:
    """Flux / SD3: one image → PEZ's keywords for the CLIP box(es) and a guided sentence for the T5 box.

    The workflow's own CLIP (Flux: DualCLIPLoader CLIP-L + T5-XXL; SD3: TripleCLIPLoader CLIP-L + bigG + T5-XXL)
    feeds PEZ CLIP from Workflow, which uses its CLIP towers and leaves T5 out; PEZ Invert learns the keywords,
    a second PEZ Invert (method guided, an LM from models/LLM) writes the sentence, both from the same image, into
    CLIPTextEncodeFlux / CLIPTextEncodeSD3 → the sampler.
    """
    flux = kind == "flux"
    if flux:
        clip = Node(2, "DualCLIPLoader", (40, 200), {"clip_name1": "clip_l.safetensors",
                                                      "clip_name2": "t5xxl_fp16.safetensors", "type": "flux",
                                                      "device": "default"})
        model = Node(1, "UNETLoader", (40, 60), {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"})
        vae = Node(3, "VAELoader", (40, 380), {"vae_name": "ae.safetensors"})
        visions, vae_link = [VIT_L], (3, 0)
    else:
        clip = Node(2, "TripleCLIPLoader", (40, 200), {"clip_name1": "clip_l.safetensors",
                                                        "clip_name2": "clip_g.safetensors",
                                                        "clip_name3": "t5xxl_fp16.safetensors"})
        model = Node(1, "CheckpointLoaderSimple", (40, 60), {"ckpt_name": "sd3.5_medium.safetensors"})
        vae = None
        visions, vae_link = [("clip_vision_g.safetensors", "CLIP Vision (bigG)"), VIT_L], (1, 2)
    nodes = [model, clip] + ([vae] if vae else [])
    links = {"clip": (2, 0)}
    for k, (file, title) in enumerate(visions):
        nodes.append(Node(4 + k, "CLIPVisionLoader", (40, 480 + 100 * k), {"clip_name": file}, title=title))
        links["clip_vision" if k == 0 else f"clip_vision_{k + 1}"] = (4 + k, 0)
    pez = Node(6, "PEZCLIPFromWorkflow", (420, 60), {"crop": "center", "text_projection": f"clip_vision/{VIT_L[0]}",
                                                     "weight_clip_l": 1.0, "weight_clip_g": 1.0, "device": "auto"},
               links)
    picture_in = image(7, "pez_example.png", (420, 300))
    lm = Node(8, "PEZLoadLM", (420, 700), {"model": GUIDE_LM, "device": "auto"}, title="PEZ Load LM (writes the sentence)")
    keywords = Node(9, "PEZInvert", (800, 60), invert_widgets(prompt_len=16, steps=1000),
                    {"pez_clip": (6, 0), "images": (7, 0), "options": (17, 0)}, "PEZ keywords (CLIP box)")
    sentence = Node(10, "PEZInvert", (800, 700), invert_widgets(prompt_len=32, method="guided"),
                    {"pez_clip": (6, 0), "images": (7, 0), "guide_lm": (8, 0)}, "Guided sentence (T5 box)")
    if flux:
        encode = Node(11, "CLIPTextEncodeFlux", (1220, 60), {"guidance": 3.5},
                      {"clip": (2, 0), "clip_l": (9, 0), "t5xxl": (10, 0)}, "Positive (keywords + sentence)")
        sampling = {"seed": 0, "steps": 20, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}
    else:
        encode = Node(11, "CLIPTextEncodeSD3", (1220, 60), {"empty_padding": "none"},
                      {"clip": (2, 0), "clip_l": (9, 0), "clip_g": (9, 0), "t5xxl": (10, 0)},
                      "Positive (keywords + sentence)")
        sampling = {"seed": 0, "steps": 28, "cfg": 4.5, "sampler_name": "dpmpp_2m", "scheduler": "sgm_uniform",
                    "denoise": 1.0}
    return [*nodes, pez, picture_in, lm, keywords, sentence, encode,
            Node(12, "CLIPTextEncode", (1220, 260), {"text": ""}, {"clip": (2, 0)}, "Negative (empty)"),
            Node(13, "EmptySD3LatentImage", (1220, 460), {"width": 1024, "height": 1024, "batch_size": 1}),
            Node(14, "KSampler", (1600, 60), sampling,
                 {"model": (1, 0), "positive": (11, 0), "negative": (12, 0), "latent_image": (13, 0)}),
            Node(15, "VAEDecode", (1980, 60), {}, {"samples": (14, 0), "vae": vae_link}),
            Node(16, "SaveImage", (1980, 240), {"filename_prefix": f"pez_{kind}"}, {"images": (15, 0)}),
            one_restart(17, (40, 900))]


def graphs() -> dict[str, tuple[str, list[Node]]]:
    return {
        "pez_invert_toy": ("Invert one image into a prompt with the bundled toy CLIP (offline).", [
            loader(1), image(2, "pez_example.png", (40, 260)),
            Node(3, "PEZInvert", (420, 60), invert_widgets(), {"pez_clip": (1, 0), "images": (2, 0)}),
        ]),
        "pez_style_toy": ("One prompt shared by several images (their common style), toy CLIP (offline).", [
            loader(1), image(2, "pez_example.png", (40, 260)), image(3, "pez_example_2.png", (40, 620)),
            Node(4, "ImageBatch", (380, 420), {}, {"image1": (2, 0), "image2": (3, 0)}),
            Node(5, "PEZInvert", (700, 60), invert_widgets(), {"pez_clip": (1, 0), "images": (4, 0)}),
        ]),
        "pez_invert_each_toy": ("One prompt per image of a batch, all optimised together (mode 'per image'), toy "
                                "CLIP (offline).", [
            loader(1), image(2, "pez_example.png", (40, 260)), image(3, "pez_example_2.png", (40, 620)),
            Node(4, "ImageBatch", (380, 420), {}, {"image1": (2, 0), "image2": (3, 0)}),
            Node(5, "PEZInvert", (700, 60), invert_widgets(seed=4, mode="per image"),
                 {"pez_clip": (1, 0), "images": (4, 0)}),
        ]),
        "pez_distill_toy": ("Distill a long prompt into 4 tokens, toy CLIP (offline).", [
            loader(1),
            Node(2, "PEZDistill", (420, 60), {"text": "a photo of a large yellow star shining on a dark night sky, "
                                                       "a yellow star, night, large", **pez_widgets(prompt_len=4)},
                 {"pez_clip": (1, 0)}),
        ]),
        "pez_concat_toy": ("Invert two images, then compose both prompts into one, toy CLIP (offline).", [
            loader(1), image(2, "pez_example.png", (40, 260)), image(3, "pez_example_2.png", (40, 620)),
            options(7, (300, 60), "PEZ Options (both inverts)", restarts=8, patience=100),
            Node(4, "PEZInvert", (420, 60), invert_widgets(seed=1),
                 {"pez_clip": (1, 0), "images": (2, 0), "options": (7, 0)}),
            Node(5, "PEZInvert", (420, 520), invert_widgets(seed=2),
                 {"pez_clip": (1, 0), "images": (3, 0), "options": (7, 0)}),
            Node(6, "PEZPromptConcat", (820, 240), pez_widgets(seed=3),
                 {"pez_clip": (1, 0), "text_a": (4, 0), "text_b": (5, 0)}),
        ]),
        "pez_invert_fluent_toy": ("The same image inverted without and with the fluency term (a toy LM on CLIP's "
                                  "tokenizer scores the prompt as language), toy CLIP (offline; needs transformers).", [
            loader(1), image(2, "pez_example.png", (40, 260)),
            Node(3, "PEZLoadLM", (40, 620), {"model": "toy_lm_small", "device": "auto"}),
            Node(4, "PEZInvert", (420, 60), invert_widgets(seed=5), {"pez_clip": (1, 0), "images": (2, 0)},
                 "PEZ Invert (no fluency)"),
            options(6, (420, 600), f"PEZ Options (fluency {FLUENCY})", fluency=FLUENCY),
            Node(5, "PEZInvert", (820, 60), invert_widgets(seed=5),
                 {"pez_clip": (1, 0), "images": (2, 0), "fluency_lm": (3, 0), "options": (6, 0)},
                 "PEZ Invert (fluency)"),
        ]),
        "pez_invert_to_image_sd15": ("Invert an image with SD 1.5's CLIP (ViT-L-14/openai, downloads once), then "
                                     "generate from the prompt with the host's CLIPTextEncode and KSampler.", [
            loader(1, model="ViT-L-14 / openai (SD 1.5, downloads)"), image(2, "pez_example.png", (40, 260)),
            Node(3, "PEZInvert", (420, 60), invert_widgets(prompt_len=16, steps=1000),
                 {"pez_clip": (1, 0), "images": (2, 0), "options": (11, 0)}),
            one_restart(11, (420, 600)),
            Node(4, "CheckpointLoaderSimple", (40, 640), {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}),
            Node(5, "CLIPTextEncode", (820, 60), {"text": ""}, {"clip": (4, 1), "text": (3, 0)}, "Positive (PEZ prompt)"),
            Node(6, "CLIPTextEncode", (820, 300), {"text": "blurry, low quality"}, {"clip": (4, 1)}, "Negative"),
            Node(7, "EmptyLatentImage", (820, 520), {"width": 512, "height": 512, "batch_size": 1}),
            Node(8, "KSampler", (1200, 60), {"seed": 0, "steps": 25, "cfg": 9.0, "sampler_name": "dpmpp_2m",
                                              "scheduler": "karras", "denoise": 1.0},
                 {"model": (4, 0), "positive": (5, 0), "negative": (6, 0), "latent_image": (7, 0)}),
            Node(9, "VAEDecode", (1560, 60), {}, {"samples": (8, 0), "vae": (4, 2)}),
            Node(10, "SaveImage", (1560, 220), {"filename_prefix": "pez"}, {"images": (9, 0)}),
        ]),
        "pez_workflow_clip_sd15": (
            "Invert an image with SD 1.5's own CLIP-L (PEZ CLIP from Workflow), then generate from the prompt "
            "(cfg 9, 25 steps). Put OpenAI's clip-vit-large-patch14 model.safetensors in models/clip_vision, renamed "
            "clip-vit-large-patch14.safetensors: it is both the matching vision model and CLIP-L's missing text "
            "projection. PEZ Image Similarity reports the CLIP similarity of target and generated image (the paper's "
            "metric).",
            workflow_clip("v1-5-pruned-emaonly.safetensors", [VIT_L], f"clip_vision/{VIT_L[0]}", 512)),
        "pez_workflow_clip_sd2": (
            "Invert an image with SD 2.1's own text encoder (OpenCLIP ViT-H; the checkpoint holds its text "
            "projection), then generate at 768x768 (cfg 9, 25 steps). Put CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors "
            "(the matching vision model) in models/clip_vision. PEZ Image Similarity reports the CLIP similarity of "
            "target and generated image (the paper's metric).",
            workflow_clip("v2-1_768-ema-pruned.safetensors",
                          [("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "CLIP Vision (ViT-H/14)")], "none", 768)),
        "pez_workflow_clip_sdxl": (
            "One prompt learned for both SDXL text encoders (CLIP-L and bigG), then generated at 1024x1024 (cfg 9, "
            "25 steps). models/clip_vision needs clip_vision_g.safetensors (bigG's vision model) and OpenAI's "
            "clip-vit-large-patch14 model.safetensors renamed clip-vit-large-patch14.safetensors (CLIP-L's vision "
            "model and its missing text projection). PEZ Image Similarity reports the CLIP similarity of target and "
            "generated image, judged with bigG (the paper's metric).",
            workflow_clip("sd_xl_base_1.0.safetensors", [("clip_vision_g.safetensors", "CLIP Vision (bigG)"), VIT_L],
                          f"clip_vision/{VIT_L[0]}", 1024)),
        "pez_prompt_pair_flux": (
            "Flux: one image gives two prompts — PEZ's keywords for the CLIP-L box and a sentence written by a "
            "language model and chosen by CLIP (method guided) for the T5-XXL box — into CLIPTextEncodeFlux. Needs "
            "Flux's files: models/diffusion_models/flux1-dev.safetensors, models/text_encoders/clip_l.safetensors and "
            "t5xxl_fp16.safetensors, models/vae/ae.safetensors; OpenAI's clip-vit-large-patch14 model.safetensors "
            f"renamed {VIT_L[0]} in models/clip_vision (CLIP-L's vision model and text projection); and a causal LM "
            f"saved with safetensors in models/LLM/{GUIDE_LM} (any transformers causal LM folder works).",
            prompt_pair("flux")),
        "pez_prompt_pair_sd3": (
            "SD3 / SD3.5: PEZ's keywords for the CLIP-L and bigG boxes and a guided sentence for the T5-XXL box, "
            "into CLIPTextEncodeSD3. Needs models/checkpoints/sd3.5_medium.safetensors, models/text_encoders/"
            "clip_l.safetensors, clip_g.safetensors and t5xxl_fp16.safetensors; in models/clip_vision "
            f"clip_vision_g.safetensors (bigG's vision model) and {VIT_L[0]} (OpenAI's clip-vit-large-patch14 "
            f"model.safetensors, renamed); and a causal LM saved with safetensors in models/LLM/{GUIDE_LM}.",
            prompt_pair("sd3")),
    }


def api_format(nodes: list[Node]) -> dict:
    out = {}
    for n in nodes:
        inputs = {k: v for k, v in n.widgets.items() if k not in n.links}
        inputs.update({k: [str(src), slot] for k, (src, slot) in n.links.items()})
        out[str(n.id)] = {"class_type": n.type, "inputs": inputs, "_meta": {"title": n.title or n.type}}
    return out


def size(n: Node) -> tuple[int, int]:
    w, h = SIZES[n.type]
    return w, h + (RESULT_ROOM if n.type in ("PEZInvert", "PEZDistill", "PEZPromptConcat", "PEZImageSimilarity") else 0)


def layout(nodes: list[Node]) -> dict[int, tuple[int, int]]:
    """Each node's position: columns in the order of the x ``graphs()`` gives, each as wide as its widest
    node; within a column, nodes in the order of their given y, stacked at their real heights."""
    columns: dict[int, list[Node]] = {}
    for n in nodes:
        columns.setdefault(n.pos[0], []).append(n)
    pos, x = {}, 40
    for key in sorted(columns):
        y = 60
        for n in sorted(columns[key], key=lambda n: n.pos[1]):
            pos[n.id] = (x, y)
            y += size(n)[1] + GAP[1]
        x += max(size(n)[0] for n in columns[key]) + GAP[0]
    return pos


def ui_format(nodes: list[Node], description: str) -> dict:
    links, link_id = [], 0
    where = layout(nodes)
    ui_nodes = {n.id: {"id": n.id, "type": n.type, "pos": list(where[n.id]), "size": list(size(n)),
                       "flags": {}, "order": i, "mode": 0, "inputs": [],
                       "outputs": [{"name": name, "type": typ, "links": [], "slot_index": k}
                                   for k, (name, typ) in enumerate(NODE_TYPES[n.type][0])],
                       "properties": {"Node name for S&R": n.type}, "widgets_values": []}
                for i, n in enumerate(nodes)}
    for n in nodes:
        node = ui_nodes[n.id]
        if n.title:
            node["title"] = n.title
        widget_names = NODE_TYPES[n.type][1]
        for name, (src, slot) in n.links.items():
            link_id += 1
            typ = INPUT_TYPES[name]
            entry = {"name": name, "type": typ, "link": link_id}
            if name in widget_names:
                entry["widget"] = {"name": name}
            node["inputs"].append(entry)
            ui_nodes[src]["outputs"][slot]["links"].append(link_id)
            links.append([link_id, src, slot, n.id, len(node["inputs"]) - 1, typ])
        values = []
        for name in widget_names:
            if name == "@control":
                values.append("fixed")
            elif name == "@upload":
                values.append("image")
            else:
                values.append(n.widgets.get(name, ""))
        node["widgets_values"] = values
    return {"last_node_id": max(n.id for n in nodes), "last_link_id": link_id, "nodes": list(ui_nodes.values()),
            "links": links, "groups": [], "config": {}, "extra": {"pez_description": description}, "version": 0.4}


def main() -> None:
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    tw.render(tw.Scene("star", "yellow", "large", "night"), size=256, seed=7).save(OUT / "pez_example.png")
    tw.render(tw.Scene("star", "yellow", "small", "grass"), size=256, seed=8).save(OUT / "pez_example_2.png")
    for name, (description, nodes) in graphs().items():
        ui, api = ui_format(nodes, description), api_format(nodes)
        (OUT / f"{name}.json").write_text(json.dumps(ui, indent=2) + "\n")
        (OUT / "api" / f"{name}.json").write_text(json.dumps(api, indent=2) + "\n")
        print(f"wrote workflows/{name}.json, workflows/api/{name}.json")
    print("now run tools/screenshot_workflows.py (a real ComfyUI) to picture them: workflows/<name>.png")


if __name__ == "__main__":
    main()
