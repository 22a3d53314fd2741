"""The PEZ nodes for ComfyUI (V3 schema). Each ``execute`` is a call into ``node_bodies`` (or ``pick_body``).

Node ids (``PEZLoadCLIP``, ``PEZCLIPFromWorkflow``, ``PEZInvert``, ``PEZDistill``, ``PEZPromptConcat``, ``PEZOptions``,
``PEZImageSimilarity``, ``PEZLoadLM``, ``PEZPromptList``, ``PEZPickByGeneration``) are what saved workflows store:
they never change. The optimising nodes
show only what most users change; ``PEZOptions`` holds the rest (``javascript/pez.js`` moves an older saved
workflow's values there).
"""

from __future__ import annotations

import inspect

from comfy_api.latest import ComfyExtension, io, ui

from ..core import ACTIVATIONS, METHODS, PEZConfig, VOCABULARIES, load_clip
from . import host, node_bodies, model_choices, native_text, native_vision, pick_body, workflow_clip
from .prompt_syntax import for_text_encode

PEZ_CLIP = io.Custom("PEZ_CLIP")
PEZ_LM = io.Custom("PEZ_LM")
PEZ_OPTIONS = io.Custom("PEZ_OPTIONS")
CATEGORY = "conditioning/PEZ"
DEFAULTS = node_bodies.DEFAULTS  # PEZConfig's defaults: the widgets show what an omitted input gets
LOAD_DEFAULTS = inspect.signature(load_clip).parameters


def _optimisation_inputs(prompt_len: int = DEFAULTS.prompt_len) -> list:
    """The widgets every optimising node shows (paper defaults: 16 tokens, 3000 steps); the rest is PEZ Options'.

    An omitted input gets ``node_bodies.make_config``'s default, which is the same ``PEZConfig`` default.
    """
    return [
        io.Int.Input("prompt_len", default=prompt_len, min=1, max=75,
                     tooltip="Learned tokens in the prompt (paper: 16; 8 for short distilled prompts)."),
        io.Int.Input("steps", default=DEFAULTS.steps, min=1, max=100000,
                     tooltip="Optimisation steps (paper: 3000). Stop early with PEZ Options' 'patience' or Cancel: "
                             "the best so far is kept."),
        io.Int.Input("seed", default=DEFAULTS.seed, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Seeds the initial tokens: the same seed and inputs give the same prompt."),
        io.Combo.Input("method", options=list(METHODS), default=DEFAULTS.method, optional=True,
                       tooltip="pez (the paper's Algorithm 1) or one of its baselines: autoprompt_sgd, fluentprompt, "
                               "soft (projected once at the end), greedy_bank (append phrases of PEZ Options' "
                               "'bank'); guided: a language model (guide_lm) writes the prompt and CLIP chooses."),
    ]


def _link_inputs() -> list:
    """The optional links every optimising node takes: PEZ Options, and the language models."""
    return [
        PEZ_OPTIONS.Input("options", optional=True,
                          tooltip="From PEZ Options: lr, restarts, patience, vocabulary controls, negatives, fluency, "
                                  "guided decoding's settings (nothing connected: their defaults)."),
        PEZ_LM.Input("fluency_lm", optional=True,
                     tooltip="From PEZ Load LM: a causal LM trained on CLIP's tokenizer, for PEZ Options' fluency "
                             "(the toy CLIP's own: toy_lm_small, used when nothing is connected)."),
        PEZ_LM.Input("guide_lm", optional=True,
                     tooltip="method guided: from PEZ Load LM, the language model that writes the prompt (any "
                             "tokenizer; the toy CLIP's own toy_lm_small when nothing is connected)."),
    ]


def _option_inputs() -> list:
    """PEZ Options' widgets: each default is ``PEZConfig``'s (= what a node without PEZ Options runs with)."""
    return [
        io.Float.Input("lr", default=DEFAULTS.lr, min=0.0001, max=10.0, step=0.01, optional=True,
                       tooltip="AdamW learning rate on the continuous prompt (paper: 0.1)."),
        io.Int.Input("restarts", default=DEFAULTS.restarts, min=1, max=64, optional=True,
                     tooltip="Prompts optimised together in one batch; the best one is returned."),
        io.Int.Input("patience", default=DEFAULTS.patience, min=0, max=100000, optional=True,
                     tooltip="Stop after this many steps without a better prompt (0: run all steps)."),
        io.String.Input("blocklist", default="", optional=True,
                        tooltip="Comma-separated words that must never appear in the prompt."),
        io.Boolean.Input("ascii_only", default=DEFAULTS.ascii_only, optional=True,
                         tooltip="Only ASCII tokens: no emoji, no non-Latin scripts."),
        io.String.Input("template", default="", optional=True,
                        tooltip="Optional template such as 'a photo of {} in the style of {}': only the {} slots are learned."),
        io.String.Input("bank", default="", multiline=True, optional=True,
                        tooltip="greedy_bank only: phrases it may append, one a line (empty: the model's own "
                                "word list, e.g. the toy model's 20 words)."),
        io.String.Input("negative_text", default="", optional=True,
                        tooltip="PEZ Invert (mode shared) only: a text the prompt should NOT match."),
        io.Float.Input("negative_weight", default=node_bodies.NEGATIVE_WEIGHT, min=0.0, max=0.95, step=0.05,
                       optional=True,
                       tooltip="PEZ Invert only: how hard the negatives push: their total weight as a share of the "
                               "images' weight."),
        io.Float.Input("fluency", default=DEFAULTS.fluency, min=0.0, max=10.0, step=0.001, optional=True,
                       tooltip="Weight of a language model's cross-entropy over the prompt: more readable prompts "
                               "at some cost in similarity (0: off). Needs the PEZ node's fluency_lm, except with the toy CLIP."),
        io.Int.Input("beams", default=DEFAULTS.beams, min=1, max=64, optional=True,
                     tooltip="method guided: beams kept (VGD: 10)."),
        io.Int.Input("candidates", default=DEFAULTS.candidates, min=1, max=256, optional=True,
                     tooltip="method guided: continuations each beam proposes per step (VGD: 10)."),
        io.Float.Input("lm_weight", default=DEFAULTS.lm_weight, min=0.0, max=10.0, step=0.01, optional=True,
                       tooltip="method guided: weight of the LM's mean log-probability against CLIP's similarity "
                               "(0: CLIP alone picks among the LM's likely tokens)."),
        io.String.Input("start_text", default="", optional=True,
                        tooltip="method guided: words every prompt starts with (e.g. PEZ's hard prompt or a subject)."),
        io.String.Input("instruction", default="", optional=True,
                        tooltip="method guided: what the LM reads before the prompt, not part of it (an "
                                "instruction-tuned LM's request, through its chat template when it has one)."),
    ]


def _config(clip, **widgets) -> PEZConfig:
    """The widget values given; each omitted one takes ``node_bodies.make_config``'s (= ``PEZConfig``'s) default."""
    return node_bodies.make_config(device=clip.device, **widgets)


def _settings(node: type[io.ComfyNode], name: str, options, widgets: dict) -> dict:
    """PEZ Options' values and the node's widgets (``node_bodies.settings``), checked against the inputs the API
    prompt sent this node (an optimising node is an output node: ComfyUI hands it the prompt)."""
    sent = ((node.hidden.prompt or {}).get(str(node.hidden.unique_id)) or {}).get("inputs")
    return node_bodies.settings(name, options, widgets, sent)


def _shown(result) -> tuple[str, str]:
    """The prompt as CLIPTextEncode must read it (parentheses escaped), and the text shown on the node for it."""
    text = for_text_encode(result.text)
    notes = "".join(f"\n· {n}" for n in result.notes)
    method = f" · {result.method}" if result.method != "pez" else ""
    return text, f"{text}\n\nsimilarity {result.similarity:.4f} · {result.steps} steps{method}{notes}"


def _output(result, node_id) -> io.NodeOutput:
    """The prompt, its similarity, and the notes on the node."""
    text, shown = _shown(result)
    host.show_on_node(node_id, shown)
    return io.NodeOutput(text, result.similarity, ui=ui.PreviewText(shown))


_OUTPUTS = [
    io.String.Output(display_name="prompt", tooltip="The learned prompt: connect it to CLIPTextEncode's text."),
    io.Float.Output(display_name="similarity", tooltip="Cosine similarity of the prompt's text feature to the targets."),
]


_LIST_OUTPUTS = [  # PEZ Invert: one prompt (shared), or one per image as a ComfyUI output list
    io.String.Output(display_name="prompt", is_output_list=True,
                     tooltip="The learned prompt (per image: one per image; nodes downstream run once per prompt)."),
    io.Float.Output(display_name="similarity", is_output_list=True,
                    tooltip="Cosine similarity of each prompt's text feature to its target(s)."),
]


def _outputs(results, node_id) -> io.NodeOutput:
    """List outputs for PEZ Invert: each result's prompt and similarity; the node shows one text per prompt."""
    shown = [_shown(r) for r in results]
    host.show_on_node(node_id, "\n\n".join(s for _, s in shown))
    return io.NodeOutput([t for t, _ in shown], [r.similarity for r in results], ui={"text": [s for _, s in shown]})


def _optimising_schema(node_id: str, display_name: str, description: str, inputs: list,
                       outputs: list | None = None) -> io.Schema:
    """The schema every optimising node shares: prompt + similarity out, shown on the node (an output node)."""
    return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, description=description,
                     inputs=inputs, outputs=outputs or _OUTPUTS, hidden=[io.Hidden.unique_id], is_output_node=True)


def _model_schema(node_id: str, display_name: str, description: str, inputs: list) -> io.Schema:
    """The schema both model nodes share: one ``pez_clip`` output."""
    return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, description=description,
                     inputs=inputs, outputs=[PEZ_CLIP.Output(display_name="pez_clip")])


class PEZLoadCLIP(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return _model_schema(
            "PEZLoadCLIP", "PEZ Load CLIP",
            "Loads an open_clip CLIP for PEZ: the bundled toy model, files in models/open_clip, or a named model.",
            [
                io.Combo.Input("model", options=model_choices.choices(),
                               tooltip="The CLIP to optimise against. Use the CLIP of your diffusion model: ViT-L-14/openai "
                                       "for SD 1.5, ViT-H-14 for SD 2.x. Files go in ComfyUI/models/open_clip/."),
                io.Combo.Input("device", options=["auto", "cpu", "cuda"], default="auto",
                               tooltip="auto: ComfyUI's device."),
                io.String.Input("custom_model", default="", optional=True,
                                tooltip="Overrides 'model': an open_clip name (with 'pretrained'), hf-hub:org/repo or a folder."),
                io.String.Input("pretrained", default="", optional=True,
                                tooltip="Pretrained tag or .safetensors path for an open_clip name in 'custom_model'."),
                io.Combo.Input("activation", options=list(ACTIVATIONS), default=LOAD_DEFAULTS["activation"].default,
                               optional=True,
                               tooltip="The MLP activation the weights were trained with. auto: decided from the "
                                       "model's config or weights (OpenAI's CLIPs, e.g. SD 1.5's: quickgelu)."),
                io.Combo.Input("vocabulary", options=list(VOCABULARIES), default=LOAD_DEFAULTS["vocabulary"].default,
                               optional=True,
                               tooltip="full: every token. declared: only the words in the model folder's "
                                       "pez_vocabulary.txt."),
            ],
        )

    @classmethod
    def execute(cls, model, **inputs) -> io.NodeOutput:
        return io.NodeOutput(node_bodies.load_model(model, **inputs))


class PEZCLIPFromWorkflow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return _model_schema(
            "PEZCLIPFromWorkflow", "PEZ CLIP from Workflow",
            "Uses the workflow's own CLIP (the text encoder that conditions your sampler) for PEZ, and a CLIP Vision "
            "model for its images. SDXL: one prompt learned for both text encoders.",
            [
                io.Clip.Input("clip", tooltip="From your checkpoint loader, CLIPLoader or DualCLIPLoader (LoRAs applied "
                                              "are kept). It is copied for PEZ, never changed."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="For inverting images: the CLIP Vision that matches the text encoder "
                                            "(SD 1.5: OpenAI ViT-L/14; SD 2.x: ViT-H laion2b; SDXL: clip_vision_g). "
                                            "Not needed for Distill and Concat."),
                io.ClipVision.Input("clip_vision_2", optional=True,
                                    tooltip="SDXL: a second CLIP Vision so both text encoders score the prompt "
                                            "(bigG's and OpenAI ViT-L/14's); each is paired by its width."),
                io.Combo.Input("crop", options=list(native_vision.CROPS), default="center", optional=True,
                               tooltip="As in CLIP Vision Encode: center-crop the images, or squash them (none)."),
                io.Combo.Input("text_projection", options=workflow_clip.projection_choices(), default="none",
                               optional=True,
                               tooltip="SD 1.5 / SDXL checkpoints leave out CLIP-L's text projection, which images "
                                       "need: choose a file that holds it (e.g. OpenAI's clip-vit-large-patch14 "
                                       "model.safetensors in models/clip_vision)."),
                io.Float.Input("weight_clip_l", default=1.0, min=0.0, max=10.0, step=0.05, optional=True,
                               tooltip="SDXL / SD3: CLIP-L's share of the similarity (0: bigG alone)."),
                io.Float.Input("weight_clip_g", default=1.0, min=0.0, max=10.0, step=0.05, optional=True,
                               tooltip="SDXL / SD3: bigG's share of the similarity."),
                io.Combo.Input("device", options=["auto", "cpu", "cuda"], default="auto", optional=True,
                               tooltip="Where PEZ's copy of the text encoder runs. auto: ComfyUI's device."),
            ],
        )

    @classmethod
    def execute(cls, clip, **inputs) -> io.NodeOutput:
        return io.NodeOutput(node_bodies.from_workflow(clip, **inputs))


class PEZLoadLM(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PEZLoadLM", display_name="PEZ Load LM", category=CATEGORY,
            description="Loads a causal language model (needs transformers): the bundled toy LMs, or transformers "
                        "folders in models/LLM. As guide_lm (method guided) any causal LM writes the prompt; as "
                        "fluency_lm it must share CLIP's tokenizer.",
            inputs=[
                io.Combo.Input("model", options=model_choices.lm_choices(),
                               tooltip="toy_lm_small / toy_lm_large (bundled, the toy world's), or a folder "
                                       "written by save_pretrained (safetensors + tokenizer) in ComfyUI/models/LLM/."),
                io.Combo.Input("device", options=["auto", "cpu", "cuda"], default="auto", tooltip="auto: ComfyUI's device."),
            ],
            outputs=[PEZ_LM.Output(display_name="pez_lm")],
        )

    @classmethod
    def execute(cls, model, device="auto") -> io.NodeOutput:
        return io.NodeOutput(node_bodies.load_lm(model, device))


class PEZInvert(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return _optimising_schema(
            "PEZInvert", "PEZ Invert Image",
            "Learns a readable prompt that CLIP matches to the image(s); several images give one shared prompt. "
            "More settings (lr, restarts, blocklist, negative_text, fluency, ...): connect a PEZ Options node.",
            [
                PEZ_CLIP.Input("pez_clip", tooltip="From PEZ Load CLIP or PEZ CLIP from Workflow."),
                io.Image.Input("images", tooltip="One image, or a batch whose shared content/style the prompt captures."),
                *_optimisation_inputs(),
                io.Combo.Input("mode", options=list(node_bodies.INVERT_MODES), default=node_bodies.INVERT_MODES[0], optional=True,
                               tooltip="shared: one prompt for the whole batch (its common content or style). "
                                       "per image: one prompt for each image, all optimised together (a list: "
                                       "nodes downstream run once per prompt)."),
                io.Image.Input("negative_images", optional=True,
                               tooltip="Images the prompt should NOT match (their weight: PEZ Options' negative_weight)."),
                *_link_inputs(),
            ],
            outputs=_LIST_OUTPUTS,
        )

    @classmethod
    def execute(cls, pez_clip, images, negative_images=None, options=None, fluency_lm=None, guide_lm=None,
                mode=node_bodies.INVERT_MODES[0], **widgets) -> io.NodeOutput:
        values = _settings(cls, "PEZ Invert Image", options, widgets)
        negatives = {k: values.pop(k) for k in node_bodies.NEGATIVES if k in values}
        config = _config(pez_clip, **values)
        if mode == node_bodies.INVERT_MODES[1]:
            if negative_images is not None or (negatives.get("negative_text") or "").strip():
                raise ValueError("mode 'per image' takes no negatives (negative_images, PEZ Options' negative_text); "
                                 "use mode 'shared' for them.")
            return _outputs(node_bodies.invert_each(pez_clip, images, config, cls.hidden.unique_id), cls.hidden.unique_id)
        return _outputs([node_bodies.invert(pez_clip, images, config, cls.hidden.unique_id, fluency_lm=fluency_lm,
                                            guide_lm=guide_lm, negative_images=negative_images, **negatives)],
                        cls.hidden.unique_id)


class PEZDistill(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return _optimising_schema(
            "PEZDistill", "PEZ Distill Prompt",
            "Learns a short prompt with the meaning of a long one (texts over 77 tokens are averaged per window). "
            "More settings: connect a PEZ Options node.",
            [
                PEZ_CLIP.Input("pez_clip", tooltip="From PEZ Load CLIP or PEZ CLIP from Workflow."),
                io.String.Input("text", multiline=True, default="", tooltip="The prompt to distill."),
                *_optimisation_inputs(prompt_len=node_bodies.DISTILL_PROMPT_LEN),
                *_link_inputs(),
            ],
        )

    @classmethod
    def execute(cls, pez_clip, text, prompt_len=node_bodies.DISTILL_PROMPT_LEN, options=None, fluency_lm=None,
                guide_lm=None, **widgets) -> io.NodeOutput:
        values, notes = node_bodies.without_negatives("PEZ Distill",
                                                      _settings(cls, "PEZ Distill Prompt", options, widgets))
        config = _config(pez_clip, prompt_len=prompt_len, **values)
        result = node_bodies.distill(pez_clip, text, config, cls.hidden.unique_id, fluency_lm, guide_lm)
        result.notes.extend(notes)
        return _output(result, cls.hidden.unique_id)


class PEZPromptConcat(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return _optimising_schema(
            "PEZPromptConcat", "PEZ Prompt Concat",
            "Composes two or more prompts into one: learned by PEZ, or their plain join if that matches better. "
            "More settings: connect a PEZ Options node.",
            [
                PEZ_CLIP.Input("pez_clip", tooltip="From PEZ Load CLIP or PEZ CLIP from Workflow."),
                io.String.Input("text_a", multiline=True, default="", tooltip="First prompt."),
                io.String.Input("text_b", multiline=True, default="", tooltip="Second prompt."),
                *_optimisation_inputs(),
                io.String.Input("text_c", force_input=True, optional=True,
                                tooltip="Optional third prompt (a link, e.g. another PEZ node's prompt)."),
                io.String.Input("text_d", force_input=True, optional=True, tooltip="Optional fourth prompt (a link)."),
                *_link_inputs(),
            ],
        )

    @classmethod
    def execute(cls, pez_clip, text_a, text_b, text_c="", text_d="", options=None, fluency_lm=None, guide_lm=None,
                **widgets) -> io.NodeOutput:
        values, notes = node_bodies.without_negatives("PEZ Prompt Concat",
                                                   _settings(cls, "PEZ Prompt Concat", options, widgets))
        config = _config(pez_clip, **values)
        result = node_bodies.concat(pez_clip, [text_a, text_b, text_c, text_d], config, cls.hidden.unique_id,
                                    fluency_lm, guide_lm)
        result.notes.extend(notes)
        return _output(result, cls.hidden.unique_id)


class PEZOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PEZOptions", display_name="PEZ Options", category=CATEGORY,
            description="The settings PEZ Invert, Distill and Concat do not show: link its output to their 'options' "
                        "(one PEZ Options may feed several). Without it they run with these defaults.",
            inputs=_option_inputs(),
            outputs=[PEZ_OPTIONS.Output(display_name="options", tooltip="Link to a PEZ node's 'options' input.")],
        )

    @classmethod
    def execute(cls, **values) -> io.NodeOutput:
        return io.NodeOutput(node_bodies.options(**values))


class PEZImageSimilarity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PEZImageSimilarity",
            display_name="PEZ Image Similarity",
            category=CATEGORY,
            description="The paper's metric: CLIP cosine similarity of each target image with each generated image "
                        "(pairs by index; one image against a whole batch).",
            inputs=[
                io.Image.Input("images_a", tooltip="E.g. the target image(s) PEZ inverted."),
                io.Image.Input("images_b", tooltip="E.g. the images generated from the learned prompt."),
                PEZ_CLIP.Input("pez_clip", optional=True, tooltip="Judge with this CLIP (connect this or clip_vision)."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="Judge with this CLIP Vision model (the paper judges with a larger CLIP "
                                            "than the one it optimised against)."),
                io.Combo.Input("crop", options=list(native_vision.CROPS), default="center", optional=True,
                               tooltip="For clip_vision, as in CLIP Vision Encode: center-crop or squash."),
            ],
            outputs=[io.Float.Output(display_name="similarity", tooltip="Mean cosine similarity over the pairs."),
                     io.String.Output(display_name="per_pair", tooltip="Each pair's similarity, one a line.")],
            is_output_node=True,
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images_a, images_b, **inputs) -> io.NodeOutput:
        mean, sims = node_bodies.image_similarity(images_a, images_b, **inputs)
        text = "\n".join(f"{i + 1}: {s:.4f}" for i, s in enumerate(sims))
        host.show_on_node(cls.hidden.unique_id, f"mean {mean:.4f}\n{text}")
        return io.NodeOutput(mean, text, ui=ui.PreviewText(f"mean {mean:.4f}\n{text}"))


class PEZPromptList(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PEZPromptList", display_name="PEZ Prompt List", category=CATEGORY,
            description="Candidate prompts as a list: nodes downstream (CLIPTextEncode → KSampler → VAE Decode) run "
                        "once per prompt, and PEZ Pick by Generation keeps the one whose images come closest.",
            is_input_list=True,
            inputs=[
                io.String.Input("text_a", force_input=True, optional=True,
                                tooltip="A candidate prompt (or a list of them, e.g. PEZ Invert's per-image prompts)."),
                io.String.Input("text_b", force_input=True, optional=True, tooltip="Another candidate prompt."),
                io.String.Input("text_c", force_input=True, optional=True, tooltip="Optional third candidate."),
                io.String.Input("text_d", force_input=True, optional=True, tooltip="Optional fourth candidate."),
                io.String.Input("lines", multiline=True, default="", optional=True,
                                tooltip="More candidates, one prompt a line (empty lines are skipped)."),
            ],
            outputs=[io.String.Output(display_name="prompts", is_output_list=True,
                                      tooltip="The non-empty prompts (each once), in order: text_a..text_d, then "
                                              "lines. Nodes downstream run once per prompt.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, text_a=None, text_b=None, text_c=None, text_d=None, lines=None) -> io.NodeOutput:
        prompts = pick_body.prompt_list([t for t in (text_a, text_b, text_c, text_d) if t is not None],
                                        "\n".join(lines or []))
        host.show_on_node(cls.hidden.unique_id, "\n".join(f"{i + 1}. {p}" for i, p in enumerate(prompts)))
        return io.NodeOutput(prompts)


class PEZPickByGeneration(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PEZPickByGeneration", display_name="PEZ Pick by Generation", category=CATEGORY,
            description="Keeps the candidate prompt whose generated images are closest to the target(s), judged by "
                        "a CLIP: a better CLIP text score need not mean a closer regenerated image.",
            is_input_list=True,
            inputs=[
                io.String.Input("prompts", force_input=True,
                                tooltip="The candidate prompts, as a list (e.g. PEZ Prompt List)."),
                io.Image.Input("images", tooltip="The images generated from each prompt: one batch per prompt, in the "
                                                 "prompts' order (VAE Decode fed by the same prompt list)."),
                io.Image.Input("target", tooltip="The target image(s) the prompts should regenerate."),
                PEZ_CLIP.Input("pez_clip", optional=True,
                               tooltip="Judge with this CLIP (connect this or clip_vision); best a CLIP other than "
                                       "the one the prompts were learned with."),
                io.ClipVision.Input("clip_vision", optional=True, tooltip="Judge with this CLIP Vision model."),
                io.Combo.Input("crop", options=list(native_vision.CROPS), default="center", optional=True,
                               tooltip="For clip_vision, as in CLIP Vision Encode: center-crop or squash."),
            ],
            outputs=[io.String.Output(display_name="prompt", tooltip="The prompt whose images came closest."),
                     io.Float.Output(display_name="similarity",
                                     tooltip="Its mean cosine similarity, its images × the targets."),
                     io.String.Output(display_name="scores", tooltip="Every candidate's score, best first.")],
            is_output_node=True,
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, prompts=None, images=None, target=None, pez_clip=None, clip_vision=None,
                crop=None) -> io.NodeOutput:
        result = pick_body.pick(prompts, images, target, (pez_clip or [None])[0], (clip_vision or [None])[0],
                                (crop or ["center"])[0])
        shown = pick_body.ranking_text(result, prompts)
        host.show_on_node(cls.hidden.unique_id, shown)
        return io.NodeOutput(result.prompt, result.score, result.table(prompts), ui=ui.PreviewText(shown))


NODES = [PEZLoadCLIP, PEZCLIPFromWorkflow, PEZInvert, PEZDistill, PEZPromptConcat, PEZOptions, PEZImageSimilarity,
         PEZLoadLM, PEZPromptList, PEZPickByGeneration]


class PEZExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> PEZExtension:
    model_choices.register_folder()
    native_text.record_loaded_projections()  # before any model loads: which CLIPs hold a text_projection
    return PEZExtension()
