// The webuis (AUTOMATIC1111, Forge) load javascript/*.js of an extension. A click on a PEZ tab's Learn
// button goes through pez_submit(): a task id the webui's own progress bar follows (as txt2img's Generate
// does: requestProgress polls /internal/progress), passed to Python as the first input.
function pez_submit() {
    var id = randomId();
    requestProgress(id, gradioApp().getElementById('pez_progress'), null, function() {});
    var args = Array.from(arguments);
    args[0] = id;
    return args;
}

// ComfyUI loads this file too (WEB_DIRECTORY): a workflow saved before PEZ Options existed stores PEZ Invert /
// Distill / Concat's widget values in their old order, which the frontend would assign by position. Such a node
// gets its values by name; the settings that moved go to a PEZ Options node (added and linked, one per set of
// values), Concat's text_c / text_d to a text node, and one message names each node. A plain script (the webuis
// load no modules): ComfyUI's app is reached through window.comfyAPI.
(function () {
    var app = window.comfyAPI && window.comfyAPI.app && window.comfyAPI.app.app;
    if (!app) return;  // not ComfyUI
    var OPT = ["lr", "restarts", "patience", "blocklist", "ascii_only", "template", "method", "bank"];
    var SEED = ["prompt_len", "steps", "seed", "control_after_generate"];
    var OLD = {  // the widget orders before PEZ Options (git: tools/make_workflows.py NODE_TYPES)
        PEZInvert: SEED.concat(OPT, ["negative_text", "negative_weight", "fluency", "mode"]),
        PEZDistill: ["text"].concat(SEED, OPT, ["fluency"]),
        PEZPromptConcat: ["text_a", "text_b"].concat(SEED, ["text_c", "text_d"], OPT, ["fluency"]),
    };
    var MOVED = ["lr", "restarts", "patience", "blocklist", "ascii_only", "template", "bank", "negative_text",
                 "negative_weight", "fluency"];
    var pending = [];  // [node, old values by name], filled while a graph loads

    function widget(node, name) {
        return (node.widgets || []).find(function (w) { return w.name === name; });
    }

    function same(a, b) {
        return a === b || (typeof a === "number" && typeof b === "number" && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)));
    }

    function oldValues(node, data) {
        var names = OLD[node.comfyClass], values = data && data.widgets_values;
        if (!names || !Array.isArray(values) || values.length !== names.length) return null;
        var byName = {};
        names.forEach(function (name, i) { byName[name] = values[i]; });
        return byName;
    }

    function moved(node, old, defaults) {
        // patience 0 (off) and the default patience are the same run when it has fewer steps than that patience
        return MOVED.filter(function (name) {
            if (!(name in old) || !defaults[name] || same(old[name], defaults[name].value)) return false;
            return !(name === "patience" && old.patience === 0 && old.steps < defaults.patience.value);
        });
    }

    function rightOfGraph() {
        return Math.max.apply(null, (app.graph.nodes || app.graph._nodes).map(function (n) { return n.pos[0] + n.size[0]; })) + 60;
    }

    function add(type, pos) {
        var node = LiteGraph.createNode(type);
        app.graph.add(node);
        node.pos = pos.slice();
        return node;
    }

    function migrate() {
        var todo = pending.splice(0), lines = [], groups = {};
        if (!todo.length) return;
        var probe = LiteGraph.createNode("PEZOptions"), defaults = {};
        (probe.widgets || []).forEach(function (w) { defaults[w.name] = w; });
        var x = rightOfGraph(), y = Math.min.apply(null, todo.map(function (t) { return t[0].pos[1]; }));
        todo.forEach(function (t) {
            var node = t[0], old = t[1], names = moved(node, old, defaults), notes = [];
            if (names.length) {
                var key = JSON.stringify(names.map(function (n) { return [n, old[n]]; }));
                if (!groups[key]) {
                    groups[key] = add("PEZOptions", [x, y]);
                    names.forEach(function (n) { widget(groups[key], n).value = old[n]; });
                    y += groups[key].size[1] + 60;
                }
                groups[key].connect(0, node, node.findInputSlot("options"));
                notes.push(names.join(", ") + " → PEZ Options #" + groups[key].id);
            }
            ["text_c", "text_d"].forEach(function (name) {
                if (typeof old[name] !== "string" || !old[name].trim()) return;
                var text = add("PrimitiveStringMultiline", [x, y]);
                widget(text, "value").value = old[name];
                y += text.size[1] + 60;
                text.connect(0, node, node.findInputSlot(name));
                notes.push(name + " (a link now) → text node #" + text.id);
            });
            if (notes.length) lines.push((node.title || node.type) + " #" + node.id + ": " + notes.join("; ") + ".");
        });
        if (!lines.length) return;
        app.graph.setDirtyCanvas(true, true);
        var detail = "These settings moved to a PEZ Options node; it was added with the saved values and linked " +
            "to each node's 'options' (Concat's text_c / text_d to a text node):\n" + lines.join("\n") +
            "\nCheck the new nodes, then save the workflow.";
        var toast = app.extensionManager && app.extensionManager.toast;
        if (toast) toast.add({severity: "warn", summary: "PEZ: a workflow saved before PEZ Options", detail: detail});
        else alert("PEZ: a workflow saved before PEZ Options\n" + detail);
    }

    app.registerExtension({
        name: "pez.settings_moved_to_pez_options",
        beforeRegisterNodeDef: function (nodeType, nodeData) {
            if (!OLD[nodeData.name]) return;
            var configure = nodeType.prototype.configure;
            nodeType.prototype.configure = function (data) {
                var old = oldValues(this, data);
                if (old) {  // the values by name, before the frontend assigns them by position
                    var node = this;
                    data.widgets_values = node.widgets.filter(function (w) { return w.serialize !== false; })
                        .map(function (w) { return w.name in old ? old[w.name] : w.value; });
                    pending.push([node, old]);
                }
                return configure.apply(this, arguments);
            };
        },
        afterConfigureGraph: migrate,
    });
})();
