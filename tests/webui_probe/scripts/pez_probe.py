"""Test probe, linked into a webui's ``extensions/`` by ``tests/test_webui_checkpoint.py`` (never shipped as a
webui script: it sits under ``tests/``): ``POST /pez-probe/v1/features`` answers, for the webui's loaded
checkpoint, each text encoder's features as the webui itself computes them (its own tokenizer, its own
modules, its own conditioning) next to PEZ's copy of the same encoder, and PEZ's image features;
``/pez-probe/v1/busy`` keeps the webui busy as a generation does, ``/pez-probe/v1/rss`` reports its memory
(``tests/test_webui_host.py``)."""

import base64
import io
import time

import torch
from fastapi import Body
from modules import devices, prompt_parser, script_callbacks


def _webui_ids(sd_model, part, text):
    """The ids the webui's own tokenizer gives ``text`` (Forge: its CLIP's tokenizers; A1111: the wrapped ones)."""
    forge = getattr(sd_model, "forge_objects", None)
    if forge is not None:
        return getattr(forge.clip.tokenizer, part.name)(text)["input_ids"]
    holders = list(sd_model.conditioner.embedders) if hasattr(sd_model, "conditioner") else [sd_model.cond_stage_model]
    for holder in holders:
        inner = getattr(holder, "wrapped", holder)
        if part.module in (getattr(inner, "transformer", None), getattr(inner, "model", None)):
            if part.layout == "hf":
                return inner.tokenizer(text)["input_ids"]
            import open_clip

            row = open_clip.tokenize([text])[0].tolist()
            return row[: row.index(max(row)) + 1]  # up to the end token (the largest id)
    raise AssertionError("text encoder not found in the webui's model")


def _webui_feature(part, ids, text):
    x = torch.tensor([ids])
    with torch.no_grad():
        if part.layout == "hf":
            pooled = part.module(input_ids=x).pooler_output
            return pooled, (part.module.text_projection(pooled) if part.has_projection else None)
        import open_clip  # A1111's ViT-H / bigG: an open_clip CLIP, its own encode_text (projected)

        return None, part.module.encode_text(open_clip.tokenize([text]))


def _parse(text):
    """The webui's own reading of a prompt's emphasis: Forge's text engine, or AUTOMATIC1111's prompt parser."""
    try:
        from backend.text_processing.parsing import parse_prompt_attention

        return parse_prompt_attention(text, "Original")
    except ImportError:
        from modules.prompt_parser import parse_prompt_attention

        return parse_prompt_attention(text)


def _features(body: dict = Body(...)):
    from PIL import Image

    from pez_nodes.core import encode_token_ids
    from pez_nodes.webui import checkpoint_clip, device, routes

    model = routes.load_model({"model": "webui", "clip_vision": body.get("clip_vision"),
                               "clip_vision_2": body.get("clip_vision_2")})  # the routes' cached model
    sd_model = checkpoint_clip.loaded_model()
    out = {"name": model.name, "notes": model.notes, "towers": [], "device": str(model.device),
           "webui_device": str(devices.device), "pez_sees": str(device.webui_device()),
           "parsed": [_parse(routes.for_webui_prompt(t)) for t in body.get("syntax", [])],
           "scheduled": [prompt_parser.get_learned_conditioning_prompt_schedules([routes.for_webui_prompt(t)], 10)[0]
                         for t in body.get("syntax", [])]}
    conds = sd_model.get_learned_conditioning(list(body["texts"]))  # what Generate hands the UNet
    if isinstance(conds, dict) and "vector" in conds:  # SDXL: the vector starts with bigG's projected pooled output
        out["webui_vector_g"] = conds["vector"][:, :1280].float().tolist()
    for tower, part in zip(model.towers, checkpoint_clip.text_parts(sd_model)):
        row = {"name": tower.name, "webui_ids": [], "pez_ids": [], "webui_pooled": [], "webui_projected": [],
               "pez": [], "webui_cond_eot": []}
        for text in body["texts"]:
            ids = [int(i) for i in _webui_ids(sd_model, part, text)]
            pez_ids = tower.text.tokenize(text)
            pooled, projected = _webui_feature(part, ids, text)
            row["webui_ids"].append(ids)
            row["pez_ids"].append([tower.text.sot_id, *pez_ids, tower.text.eot_id])
            row["webui_pooled"].append(None if pooled is None else pooled[0].float().tolist())
            row["webui_projected"].append(None if projected is None else projected[0].float().tolist())
            row["pez"].append(encode_token_ids(tower.text, [pez_ids])[0].tolist())
            if not hasattr(sd_model, "conditioner") and len(model.towers) == 1:  # SD 1.x / 2.x: the UNet's context
                cond = sd_model.get_learned_conditioning([text])
                cond = cond["crossattn"] if isinstance(cond, dict) else cond
                row["webui_cond_eot"].append(cond[0, len(ids) - 1].float().tolist())
        if body.get("image") and tower.images is not None:
            image = Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB")
            row["pez_image"] = tower.images([image])[0].tolist()
        out["towers"].append(row)
    return out


def _started(demo, app):
    app.add_api_route("/pez-probe/v1/features", _features, methods=["POST"])


script_callbacks.on_app_started(_started)


def _busy(body: dict = Body(...)):
    """Hold the webui's queue for ``seconds`` as a generation does (its lock, a job of its own, stopping on
    Interrupt): ``{"interrupted", "jobs_seen"}`` — the job names ``shared.state`` showed meanwhile."""
    from modules import call_queue, shared

    seen = set()
    with call_queue.queue_lock:
        shared.state.begin(job="probe-busy")
        try:
            end = time.time() + float(body.get("seconds", 5))
            while time.time() < end and not shared.state.interrupted:
                seen.add(shared.state.job)
                time.sleep(0.05)
            interrupted = bool(shared.state.interrupted)
        finally:
            shared.state.end()
    return {"interrupted": interrupted, "jobs_seen": sorted(seen)}


def _rss():
    """This webui process's resident memory, in MB (``/proc/self/status``)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"rss_mb": kb / 1024}


def _started_host(demo, app):
    app.add_api_route("/pez-probe/v1/busy", _busy, methods=["POST"])
    app.add_api_route("/pez-probe/v1/rss", _rss, methods=["GET"])


script_callbacks.on_app_started(_started_host)
