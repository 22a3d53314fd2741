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
