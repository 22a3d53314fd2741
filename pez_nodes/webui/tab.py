"""The webuis' PEZ tab: invert (one or several images → one prompt), distill, concat, with every control
of the core, the live best prompt, Interrupt, and "send to txt2img / img2img".

Gradio is imported only in :func:`build` (AUTOMATIC1111 ships Gradio 3.41, Forge 4.40; only components
both have are used). A click runs the same request as ``POST /pez/v1/<kind>`` (``routes.run``) in a
thread and streams what ``shared.state`` shows while it runs — the webui's progress API and its Interrupt
see the same job. The tab asks no more than a request may (the owner's limits, the listed CLIPs), since
Gradio's own API lets other machines drive it too. Its Interrupt reaches only the run it started (a run
still waiting for the webui's queue is dropped, a generation in progress is left alone); "Free PEZ's model"
releases the cached CLIP (and guided decoding's LM). Method guided shows its language model (the bundled toy
LMs and the webui's ``models/LLM`` folders) and its settings.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import fields
from pathlib import Path

from ..core import TASK_PROMPT_LEN, PEZConfig
from . import clip_vision, device, model_choices, routes
from .request import WEBUI_METHODS

DEFAULTS = {f.name: f.default for f in fields(PEZConfig)} | {"prompt_len": TASK_PROMPT_LEN["invert"]}  # opens on Invert
# (field, label, kind, extra): the controls under "Settings", in order; every PEZConfig field a user sets
CONTROLS = [
    ("prompt_len", "Prompt tokens (M)", "slider", (1, 75, 1)),
    ("steps", "Steps", "number", None),
    ("seed", "Seed", "number", None),
    ("restarts", "Restarts (candidates optimised together)", "number", None),
    ("patience", "Patience (steps without a better prompt; 0 = off)", "number", None),
    ("lr", "Learning rate", "float", None),
    ("weight_decay", "Weight decay", "float", None),
    ("top_k", "Top-k (project onto one of the k nearest tokens)", "number", None),
    ("method", "Method", "dropdown", WEBUI_METHODS),
    ("beta", "FluentPrompt noise β", "float", None),
    ("fluency", "Fluency λ (LM cross-entropy weight; toy CLIP: toy LM)", "float", None),
    ("template", "Template (e.g. 'a photo of {} in the style of {}')", "text", None),
    ("blocklist", "Blocklist (words, comma-separated)", "text", None),
    ("blocklist_substring", "Block every token containing a blocked word", "checkbox", None),
    ("allowlist", "Allowlist (only these words; empty = all)", "text", None),
    ("ascii_only", "ASCII tokens only", "checkbox", None),
    ("bank", "Bank (greedy_bank: phrases, one a line)", "lines", None),
    ("precision", "Precision", "dropdown", ("auto", "fp32", "bf16", "fp16")),
    # method guided's (last: shown beside the LM choice, only while guided is chosen)
    ("beams", "Guided: beams kept", "number", None),
    ("candidates", "Guided: continuations per beam and step", "number", None),
    ("lm_weight", "Guided: LM weight (against CLIP's similarity)", "float", None),
    ("start_text", "Guided: start every prompt with", "text", None),
    ("instruction", "Guided: instruction the LM reads first (not in the prompt)", "text", None),
]
VISIBLE = 4  # prompt_len, steps, seed, restarts: shown; the rest under "More settings"
GUIDED = ("beams", "candidates", "lm_weight", "start_text", "instruction")  # sent with method guided only
KINDS = ("invert", "distill", "concat")
JOBS: dict = {}  # task id (or "last") → the tab's routes.Job, for its Interrupt button


def request_body(kind: str, model: str, pretrained: str, source, *values, visions=(), where: str = "auto",
                 lm: str | None = None) -> dict:
    """The ``/pez/v1/<kind>`` request the tab's inputs make (empty text fields left out: the core's default).

    ``source``: invert — uploaded files (paths, or Gradio 3's temp-file objects); distill — the text;
    concat — the prompts, one a line. ``values`` follow :data:`CONTROLS`. ``visions``: the two CLIP Vision
    choices (used with the webui's checkpoint). ``where``: the device (``auto``: the webui's). ``lm`` and the
    :data:`GUIDED` controls are sent only with method guided.
    """
    body: dict = {"model": model or "toy", "device": where or "auto"}
    if pretrained and pretrained.strip():
        body["pretrained"] = pretrained.strip()
    for key, choice in zip(routes.VISION_KEYS, visions):
        if choice and choice != clip_vision.NONE:
            body[key] = choice
    if kind == "invert":  # the uploads' bytes, as a request sends them (a request never names a file)
        files = source if isinstance(source, list) else [source] if source else []
        paths = [getattr(f, "name", None) or (f.get("path") if isinstance(f, dict) else f) for f in files]
        body["images"] = [routes.image_field(Path(p).read_bytes()) for p in paths]
    elif kind == "distill":
        body["text"] = source or ""
    else:
        body["texts"] = [line.strip() for line in (source or "").splitlines() if line.strip()]
    for (name, _, control, _), value in zip(CONTROLS, values):
        if control in ("text", "lines") and not (value or "").strip():
            continue
        if control == "number":
            value = int(value)
        body[name] = value
    if body.get("method") == "guided":
        if lm:
            body["lm"] = lm
    else:
        for name in GUIDED:
            body.pop(name, None)
    return body


def learn(kind: str, body: dict, state, poll_s: float = 0.5, tasks=None, task_id: str | None = None):
    """Run one request in a thread; yield (live text, prompt, result line) while it runs and once at the end.

    ``tasks`` (the webui's ``modules.progress``) and ``task_id`` (made by ``javascript/pez.js`` on the click)
    make the run the webui's current task once it holds the webui's queue, so its own progress bar follows
    it. A bad input ends as one line in the result box (as the API's 400), never as a Gradio error."""
    out: dict = {}
    task = task_id if tasks is not None and task_id and task_id.startswith("task(") else None
    if task:
        tasks.add_task_to_queue(task)
    job = routes.Job(on_start=(lambda: tasks.start_task(task)) if task else None)
    JOBS[task or "last"] = JOBS["last"] = job

    def work():
        try:
            out["result"] = routes.run(kind, body, job)
        except Exception as e:  # noqa: BLE001 — shown to the user as one line, as the API answers
            out["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not isinstance(e, ValueError):  # not a bad input: the console keeps the traceback for a bug report
                traceback.print_exc()
        finally:
            if task:
                tasks.finish_task(task)
            for key in [k for k, v in JOBS.items() if v is job and k != "last"]:
                del JOBS[key]

    worker = threading.Thread(target=work, name=f"pez-{kind}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(poll_s)
        waiting = not job.started.is_set()
        yield ("" if waiting else state.textinfo or ""), "", "waiting for the webui…" if waiting else "running…"
    if "error" in out:
        yield "", "", f"Error: {out['error']}"
        return
    r = out["result"]
    notes = "".join(f"\n· {n}" for n in r["notes"])
    yield (state.textinfo or ""), r["prompt"], (f"similarity {r['similarity']:.4f} · {r['steps']} steps · "
                                               f"{r['stop_reason']} · {r['model']} on {r['device']}{notes}")


def interrupt(state, task_id: str | None = None) -> None:
    """The tab's Interrupt: only the run this page started (``task_id``; else the tab's last run)."""
    job = JOBS.get(task_id or "") or (None if task_id else JOBS.get("last"))
    if job is not None:
        job.cancel(state)


def free_model() -> str:
    """The tab's "Free PEZ's model" button: one result line."""
    try:
        names = routes.unload()["unloaded"]
    except RuntimeError as e:
        return f"Error: {e}"
    return f"freed {', '.join(names)}" if names else "no PEZ model was loaded"


def _control(gr, name: str, label: str, control: str, extra):
    default = DEFAULTS[name]
    if control == "slider":
        lo, hi, step = extra
        return gr.Slider(lo, hi, value=default, step=step, label=label, elem_id=f"pez_{name}")
    if control == "number":
        return gr.Number(value=default, precision=0, label=label, elem_id=f"pez_{name}")
    if control == "float":
        return gr.Number(value=default, label=label, elem_id=f"pez_{name}")
    if control == "dropdown":
        return gr.Dropdown(list(extra), value=default, label=label, elem_id=f"pez_{name}")
    if control == "checkbox":
        return gr.Checkbox(value=bool(default), label=label, elem_id=f"pez_{name}")
    return gr.Textbox(value="", label=label, lines=3 if control == "lines" else 1, elem_id=f"pez_{name}")


def build(state, folder=None, add_send_buttons=None, tasks=None, vision_folder=None, lm_folder=None):
    """The tab's ``gr.Blocks``. ``add_send_buttons(prompt_box)`` (the webui's paste buttons) is called inside
    it; ``folder`` is the webui's ``models/open_clip``, ``vision_folder`` its ``models/clip_vision``,
    ``lm_folder`` its ``models/LLM`` (default: beside ``folder``); ``tasks`` is the webui's ``modules.progress``
    (its progress bar then follows each run, through ``javascript/pez.js``)."""
    import gradio as gr

    if lm_folder is None and folder is not None:
        lm_folder = model_choices.lm_folder(Path(folder).parent)

    with gr.Blocks(analytics_enabled=False) as tab:
        task_id = gr.Textbox(visible=False, elem_id="pez_task_id")  # set by pez_submit() in javascript/pez.js
        with gr.Row():
            model = gr.Dropdown(model_choices.choices(folder), value=model_choices.choices(folder)[0], label="CLIP",
                                elem_id="pez_model")
            custom = gr.Textbox(label="…or an open_clip name, hf-hub:org/repo or a path (overrides the list; only "
                                      "where Settings → PEZ allows any CLIP)",
                                elem_id="pez_custom_model")
            pretrained = gr.Textbox(label="pretrained tag (for a name)", elem_id="pez_pretrained")
            where = gr.Dropdown(list(device.CHOICES), value="auto", label="Device (auto: the webui's)",
                                elem_id="pez_device")
            refresh = gr.Button("Refresh list", elem_id="pez_refresh")
        with gr.Row():  # for the webui's checkpoint: the image encoder(s) that match its text encoder(s)
            visions = [gr.Dropdown(clip_vision.choices(vision_folder), value=clip_vision.NONE, elem_id=f"pez_{key}",
                                   label=f"CLIP Vision{' 2 (SDXL: one per text encoder)' if i else ''} for "
                                         "the webui checkpoint (models/clip_vision)")
                       for i, key in enumerate(routes.VISION_KEYS)]
        guided_at = len(CONTROLS) - len(GUIDED)
        sources, pages = {}, {}
        with gr.Tabs():
            with gr.Tab("Invert", elem_id="pez_tab_invert") as pages["invert"]:
                sources["invert"] = gr.File(file_count="multiple", file_types=["image"],
                                            label="Image(s): one prompt for all of them", elem_id="pez_images")
            with gr.Tab("Distill", elem_id="pez_tab_distill") as pages["distill"]:
                sources["distill"] = gr.Textbox(lines=4, label="Long prompt to distill", elem_id="pez_text")
            with gr.Tab("Concat", elem_id="pez_tab_concat") as pages["concat"]:
                sources["concat"] = gr.Textbox(lines=4, label="Prompts to compose, one a line", elem_id="pez_texts")
        with gr.Row():  # the ones set every day; the rest folded
            controls = [_control(gr, *c) for c in CONTROLS[:VISIBLE]]
        for kind, page in pages.items():  # the prompt length follows the task's default (distill 8, else 16)
            page.select(lambda n=TASK_PROMPT_LEN[kind]: gr.update(value=n), inputs=[], outputs=[controls[0]])
        with gr.Accordion("More settings", open=False):
            controls += [_control(gr, *c) for c in CONTROLS[VISIBLE:guided_at]]
            with gr.Row(visible=DEFAULTS["method"] == "guided") as guided_row:  # shown while guided is chosen
                lms = model_choices.lm_choices(lm_folder)
                lm = gr.Dropdown(lms, value=lms[0], elem_id="pez_lm",
                                 label="Guided: language model (bundled, or models/LLM)")
                controls += [_control(gr, *c) for c in CONTROLS[guided_at:]]
        method = controls[[c[0] for c in CONTROLS].index("method")]
        method.change(lambda m: gr.update(visible=m == "guided"), inputs=[method], outputs=[guided_row])
        refresh.click(lambda: [gr.update(choices=model_choices.choices(folder))]
                      + [gr.update(choices=clip_vision.choices(vision_folder))] * 2
                      + [gr.update(choices=model_choices.lm_choices(lm_folder))], outputs=[model, *visions, lm])
        with gr.Row():
            buttons = {k: gr.Button(f"Learn ({k})", variant="primary", elem_id=f"pez_learn_{k}") for k in KINDS}
            stop = gr.Button("Interrupt", elem_id="pez_interrupt")
            free = gr.Button("Free PEZ's model", elem_id="pez_unload")
        gr.HTML("", elem_id="pez_progress")  # the webui's progress bar appears here during a run
        live = gr.Textbox(label="Live best prompt", interactive=False, elem_id="pez_live")
        prompt = gr.Textbox(label="Prompt", interactive=False, show_copy_button=True, elem_id="pez_prompt")
        info = gr.Textbox(label="Result", interactive=False, elem_id="pez_info")
        if add_send_buttons is not None:
            with gr.Row():
                add_send_buttons(prompt)

        for kind in KINDS:
            def run(task, model_choice, custom_model, tag, on, vision, vision_2, lm_choice, source, *values, kind=kind):
                try:
                    body = request_body(kind, (custom_model or "").strip() or model_choice, tag, source, *values,
                                        visions=(vision, vision_2), where=on, lm=lm_choice)
                except (TypeError, ValueError) as e:  # e.g. a number box left empty
                    yield "", "", f"Error: a setting is not a number ({e}); fill in every number box."
                    return
                yield from learn(kind, body, state, tasks=tasks, task_id=task)

            buttons[kind].click(run, _js="pez_submit" if tasks is not None else None,
                                inputs=[task_id, model, custom, pretrained, where, *visions, lm, sources[kind],
                                        *controls],
                                outputs=[live, prompt, info])
        stop.click(lambda task: interrupt(state, task), inputs=[task_id], outputs=[])
        free.click(free_model, inputs=[], outputs=[info])
    return tab
