"""`build_demo(deps)`: the Gradio app's layout and wiring, nothing else. Every event has an
`api_name`; handlers live in `handlers.py`, `handlers_curate.py` and `plots.py`."""

from __future__ import annotations

import functools
import os

# Gradio recomputes a pandas summary of up to 10,000 past events after every event (for its
# monitoring page) unless told otherwise: a third of the server's time under rating load.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")

import gradio as gr  # noqa: E402

from annotations import criteria
from annotations.criteria import DECISIONS, PREFERENCES
from scicot_core.errors import ScicotError
from scicot_core.questions import MAX_STEM_CHARS
from scicot_core.settings import Settings

from . import handlers as h
from . import handlers_curate as hr
from . import plots
from .deps import Deps
from .render import LATEX


def shortcuts_help() -> str:
    low, high = criteria.scale()
    return f"""**Keyboard shortcuts** (when not typing in a text box):
`{low}`–`{high}` score the highlighted criterion and move to the next · `↑`/`↓` change criterion ·
`t` teacher better · `s` student better · `i` tie · `b` both bad ·
`Enter` submit · `k` skip · `n` next item"""


def shortcuts_js() -> str:
    """The Rate tab's keys; a digit picks that score of the highlighted criterion, if its scale has it."""
    return SHORTCUTS_JS % [c.name for c in criteria.CRITERIA]


SHORTCUTS_JS = """
() => {
  const crits = %s;
  const prefs = {t: "teacher", s: "student", i: "tie", b: "both_bad"};
  let active = 0;
  const mark = () => crits.forEach((c, i) => {
    const el = document.getElementById("crit-" + c);
    if (el) el.style.boxShadow = i === active ? "0 0 0 3px #f59e0b" : "none";
  });
  const pick = (id, value) => {
    const input = document.querySelector(`#${id} input[value="${value}"]`);
    if (input) input.click();
    return !!input;
  };
  document.addEventListener("keydown", (e) => {
    const panel = document.getElementById("rate-panel");
    if (!panel || panel.offsetParent === null || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "radio" && t.type !== "checkbox"))) return;
    if (e.key >= "0" && e.key <= "9") {
      if (pick("crit-" + crits[active], e.key)) { active = (active + 1) %% crits.length; mark(); }
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      active = (active + (e.key === "ArrowDown" ? 1 : crits.length - 1)) %% crits.length; mark();
    } else if (prefs[e.key]) { pick("pref", prefs[e.key]); }
    else if (e.key === "Enter") { document.getElementById("rate-submit")?.click(); active = 0; mark(); }
    else if (e.key === "k") { document.getElementById("rate-skip")?.click(); active = 0; mark(); }
    else if (e.key === "n") { document.getElementById("rate-next")?.click(); active = 0; mark(); }
    else return;
    e.preventDefault();
  });
  setTimeout(mark, 500);
}
"""


def friendly(fn):
    """Domain errors become a `gr.Error` the user reads; nothing else is swallowed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ScicotError as e:
            raise gr.Error(str(e)) from None

    return wrapper


def friendly_stream(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except ScicotError as e:
            raise gr.Error(str(e)) from None

    return wrapper


def md(**kw) -> gr.Markdown:
    return gr.Markdown(latex_delimiters=LATEX, sanitize_html=True, **kw)


def student_dropdown(deps: Deps, **kw) -> gr.Dropdown:
    """A choice of adapter set (the student); the first set is the default."""
    sets = deps.students.names()
    return gr.Dropdown(sets, value=sets[0] if sets else None, label="Student", **kw)


def build_demo(deps: Deps) -> gr.Blocks:
    # Gradio keeps its own copy of every download and plot; drop those a day old, hourly.
    with gr.Blocks(title="SciCoT Studio", delete_cache=(3600, 86_400)) as demo:
        gr.Markdown(
            "# SciCoT Studio\nA teacher's chain-of-thought, distilled into a 135M two-stage student (Sci-CoT): see it, judge it, fix it."
        )
        rater, result, rationale_id, reviewer = gr.State(""), gr.State(None), gr.State(""), gr.State("")
        with gr.Tab("Ask", id="ask"):
            ask_set = ask_tab(deps, result)
        with gr.Tab("Rate", id="rate"):
            rate_tab(deps, rater, rationale_id)
        with gr.Tab("Curate & export", id="curate"):
            timer, retrain_md = curate_tab(deps, reviewer)
        with gr.Tab("Statistics", id="stats"):
            stats_set = stats_tab(deps)

        def poll():
            # Retrained adapters join the student lists as soon as their run finishes.
            sets = deps.students.names()
            return hr.retrain_status(deps), gr.Dropdown(choices=sets), gr.Dropdown(choices=sets)

        timer.tick(poll, None, [retrain_md, ask_set, stats_set], api_name=False, queue=False)
        demo.load(poll, None, [retrain_md, ask_set, stats_set], api_name=False, queue=False)  # a reloaded page finds the run at once
    return demo


def ask_tab(deps: Deps, result: gr.State) -> gr.Dropdown:
    sources = deps.questions.sources()
    first = h.question_choices(deps, sources[0])
    with gr.Row():
        mode = gr.Radio([("Pick a question", "pick"), ("Type my own", "typed")], value="pick", label="Question", scale=1)
        source = gr.Dropdown(sources, value=sources[0], label="From", scale=1, elem_id="ask-source")
        sample = gr.Dropdown(first, value=first[0][1] if first else None, label="Question", scale=3, elem_id="ask-question")
    with gr.Group(visible=False) as typed:
        stem = gr.Textbox(label="Question", lines=2, max_length=MAX_STEM_CHARS, elem_id="ask-stem")
        choices = gr.Textbox(label="Choices, one per line (2 to 9; labelled A, B, C ...)", lines=4, elem_id="ask-choices")
        key = gr.Textbox(label="Correct label, if you know it (the teacher then explains it)", max_lines=1)
    with gr.Row():
        offered = deps.teachers.choices()
        teacher = gr.Radio(offered, value=offered[0][1], label="Teacher for typed questions", elem_id="ask-teacher")
        url = gr.Textbox(
            label="Endpoint base URL",
            placeholder="http://127.0.0.1:8000/v1",
            value=deps.settings.endpoint.base_url if deps.settings.endpoint else "",
            info=deps.teachers.endpoint_help(),
        )
        model = gr.Textbox(label="Endpoint model", value=deps.settings.endpoint.model if deps.settings.endpoint else "")
        adapter_set = student_dropdown(deps, elem_id="ask-set")
    go = gr.Button("Ask teacher and student", variant="primary", elem_id="ask-go")
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("### Teacher rationale")
            teacher_md = md(elem_id="teacher-md")
        with gr.Column():
            gr.Markdown("### Student rationale (stage 1)")
            student_md = md(elem_id="student-md")
        with gr.Column():
            gr.Markdown("### Answer (stage 2)")
            answer_md = md(elem_id="answer-md")
            probs = gr.Label(num_top_classes=9, show_heading=False, label="Probability of each choice", elem_id="answer-probs")
    baselines = md(label="Baselines")
    info = gr.Markdown(elem_id="ask-info")
    with gr.Row():
        send = gr.Button("Send to the rating queue", elem_id="ask-send")
        sent = gr.Markdown(elem_id="ask-sent")

    mode.change(lambda m: gr.Group(visible=m == "typed"), mode, typed, api_name="toggle_typed")

    def pick_source(src):
        listed = h.question_choices(deps, src)
        return gr.Dropdown(choices=listed, value=listed[0][1] if listed else None)

    source.change(friendly(pick_source), source, sample, api_name="question_list")

    @friendly_stream
    def run(m, src, sid, s, c, k, t, u, mo, aset):
        question = h.parse_question(deps, m, src, sid, s, c, k)
        for teacher_text, student_text, answer_text, probs_by_choice, base, inf, res in h.ask(deps, question, t, u, mo, aset):
            yield teacher_text, student_text, answer_text, probs_by_choice or None, base, inf, res

    go.click(
        run,
        [mode, source, sample, stem, choices, key, teacher, url, model, adapter_set],
        [teacher_md, student_md, answer_md, probs, baselines, info, result],
        api_name="ask",
    )
    send.click(friendly(functools.partial(h.send_to_queue, deps)), result, sent, api_name="send_to_queue", concurrency_limit=None)
    return adapter_set


def rate_tab(deps: Deps, rater: gr.State, rationale_id: gr.State) -> None:
    with gr.Column(elem_id="rate-panel"):
        typed = not deps.settings.on_space  # on a Space only the Hugging Face login names a rater
        with gr.Row():
            name = gr.Textbox(label="Your name", placeholder="e.g. ada", max_lines=1, elem_id="rater-name", scale=3, visible=typed)
            token = gr.Textbox(
                label="Your token (leave empty the first time: you get one)",
                type="password",
                max_lines=1,
                elem_id="rater-token",
                scale=3,
                visible=typed,
            )
            sign = gr.Button("Start rating", elem_id="rater-sign-in", scale=1)
            if deps.settings.on_space:
                gr.LoginButton()
        signed = gr.Markdown(elem_id="rater-signed")
        progress = gr.Markdown(elem_id="rate-progress")
        question = md(elem_id="rate-question")
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("#### Rationale to rate")
                rationale = md(elem_id="rate-rationale")
            with gr.Column():
                gr.Markdown("#### The other rationale(s) for this question")
                other = md(elem_id="rate-other")
        scores = [
            gr.Radio(
                list(c.values), label=f"{c.name}: {c.question} ({c.minimum} = {c.low}, {c.maximum} = {c.high})", elem_id=f"crit-{c.name}"
            )
            for c in criteria.CRITERIA
        ]
        preference = gr.Radio(list(PREFERENCES), label="Which rationale is better for this question?", elem_id="pref")
        comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="rate-comment")
        with gr.Row():
            submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rate-submit")
            skip = gr.Button("Skip (k)", elem_id="rate-skip")
            nxt = gr.Button("Next (n)", elem_id="rate-next")
        status = gr.Markdown(elem_id="rate-status")
        with gr.Accordion("Edit this rationale", open=False):
            edit = gr.Textbox(label="Edited rationale (saved as a human edit linked to the original)", lines=4, elem_id="rate-edit")
            save = gr.Button("Save edit", elem_id="rate-save-edit")
        gr.Markdown(shortcuts_help(), elem_id="shortcuts-help")

    item_outputs = [question, rationale, other, progress, rationale_id, *scores, preference, comment, edit]

    def sign_in(typed_name, typed_token, profile: gr.OAuthProfile | None = None):
        who, message = h.sign_in(deps, profile, typed_name, typed_token)
        return (who, message, *h.next_item(deps, who))

    sign.click(friendly(sign_in), [name, token], [rater, signed, *item_outputs], api_name="sign_in", concurrency_limit=None)
    for box in (name, token):
        box.submit(friendly(sign_in), [name, token], [rater, signed, *item_outputs], api_name=False)
    load_next = friendly(functools.partial(h.next_item, deps))
    nxt.click(load_next, rater, item_outputs, api_name="next_item", concurrency_limit=None)

    def submit_then_next(who, rid, *values):
        message = h.submit_rating(deps, who, rid, *values)
        return (message, *h.next_item(deps, who))

    submit.click(
        friendly(submit_then_next),
        [rater, rationale_id, *scores, preference, comment],
        [status, *item_outputs],
        api_name="submit_rating",
        concurrency_limit=None,
    )

    def skip_then_next(who, rid):
        return (h.skip_item(deps, who, rid), *h.next_item(deps, who))

    skip.click(friendly(skip_then_next), [rater, rationale_id], [status, *item_outputs], api_name="skip", concurrency_limit=None)
    save.click(
        friendly(functools.partial(h.save_edit, deps)), [rater, rationale_id, edit], status, api_name="save_edit", concurrency_limit=None
    )


def curate_tab(deps: Deps, reviewer: gr.State) -> tuple[gr.Timer, gr.Markdown]:
    gr.Markdown("Reviewers only: accept, reject or edit rationales, export the curated set, and retrain the student on it.")
    with gr.Row():
        name = gr.Textbox(label="Reviewer name", max_lines=1, elem_id="reviewer-name")
        secret = gr.Textbox(label="Reviewer secret", type="password", max_lines=1, elem_id="reviewer-secret")
        become = gr.Button("Sign in as reviewer", elem_id="reviewer-sign-in")
    who = gr.Markdown(elem_id="reviewer-status")
    low, high = criteria.scale()
    with gr.Row():
        min_mean = gr.Slider(0, high, value=0, step=0.5, label="Minimum mean rating")
        min_raters = gr.Number(value=0, precision=0, minimum=0, label="Minimum raters")
        max_spread = gr.Slider(0, high - low, value=high - low, step=0.5, label="Maximum disagreement (range of raters' means)")
        refresh = gr.Button("Show rationales", elem_id="curate-refresh")
    table = gr.Dataframe(
        headers=hr.CANDIDATE_HEADERS,
        interactive=False,
        max_height=320,
        wrap=True,
        elem_id="curate-table",
        column_widths=["17%", "35%", "8%", "16%", "6%", "6%", "6%", "6%"],
    )
    selected = gr.Textbox(label="Selected rationale id", max_lines=1, elem_id="curate-selected")
    preview = md(elem_id="curate-preview")
    with gr.Row():
        decision = gr.Radio(list(DECISIONS), value="accept", label="Decision", elem_id="curate-decision")
        reason = gr.Textbox(label="Reason", max_lines=1, elem_id="curate-reason")
        answer_key = gr.Textbox(label="Answer key, if the question has none (e.g. B)", max_lines=1, elem_id="curate-key")
    edited = gr.Textbox(label="Edited text (for 'edit')", lines=3, elem_id="curate-edited")
    apply = gr.Button("Record decision", variant="primary", elem_id="curate-apply")
    done = gr.Markdown(elem_id="curate-done")
    with gr.Row():
        fmt = gr.Radio(["jsonl", "parquet"], value="jsonl", label="Export format")
        accepted_only = gr.Checkbox(value=True, label="Accepted only")
        export = gr.Button("Export", elem_id="curate-export")
        download = gr.File(label="Download", elem_id="curate-download")
    with gr.Row():
        append = gr.Button("Write the distillation set (base set + accepted)", elem_id="curate-append")
        steps = gr.Number(value=30, precision=0, minimum=1, maximum=2000, label="Retrain steps per stage", elem_id="curate-steps")
        retrain = gr.Button("Retrain the student in the background", elem_id="curate-retrain")
        cancel = gr.Button("Cancel retraining", elem_id="curate-cancel")
    retrain_md = gr.Markdown(elem_id="retrain-status")
    timer = gr.Timer(5.0)

    def sign_in(n, s):
        message = hr.become_reviewer(deps, n, s)
        return n.strip(), message

    become.click(friendly(sign_in), [name, secret], [reviewer, who], api_name="reviewer_sign_in", concurrency_limit=None)
    refresh.click(
        friendly(functools.partial(hr.candidates, deps)),
        [reviewer, min_mean, min_raters, max_spread],
        table,
        api_name="candidates",
        concurrency_limit=None,
    )

    def on_select(evt: gr.SelectData, rows):
        rid = rows.iloc[evt.index[0], 0] if hasattr(rows, "iloc") else rows[evt.index[0]][0]
        return (rid, *hr.show_candidate(deps, rid))

    table.select(friendly(on_select), table, [selected, preview, edited], api_name=False)
    selected.submit(
        friendly(lambda rid: (rid, *hr.show_candidate(deps, rid))),
        selected,
        [selected, preview, edited],
        api_name="show_candidate",
        concurrency_limit=None,
    )
    apply.click(
        friendly(functools.partial(hr.decide, deps)),
        [reviewer, selected, decision, reason, edited, answer_key],
        done,
        api_name="decide",
        concurrency_limit=None,
    )
    export.click(
        friendly(functools.partial(hr.export_file, deps)), [reviewer, fmt, accepted_only, min_mean, min_raters], download, api_name="export"
    )
    append.click(friendly(functools.partial(hr.append_accepted, deps)), reviewer, done, api_name="append_accepted", concurrency_limit=None)
    retrain.click(friendly(functools.partial(hr.start_retrain, deps)), [reviewer, steps], retrain_md, api_name="retrain")
    cancel.click(friendly(functools.partial(hr.cancel_retrain, deps)), reviewer, retrain_md, api_name="cancel_retrain")
    return timer, retrain_md


def stats_tab(deps: Deps) -> gr.Dropdown:
    refresh = gr.Button("Refresh statistics", elem_id="stats-refresh")
    agreement = md(elem_id="stats-agreement")
    distribution = gr.Plot(label="Ratings per criterion, by rationale source")
    preference = gr.Plot(label="Teacher vs student preference")
    refresh.click(friendly(functools.partial(plots.stats, deps)), None, [distribution, preference, agreement], api_name="stats")
    with gr.Row():
        adapter_set = student_dropdown(deps)
        n = gr.Slider(4, 100, value=12, step=4, label="Dev questions")
        run = gr.Button("Measure accuracy", elem_id="stats-accuracy")
    accuracy_md = gr.Markdown(elem_id="stats-accuracy-md")
    accuracy = gr.Plot(label="Accuracy by variant")
    run.click(
        friendly(functools.partial(plots.student_accuracy, deps)), [adapter_set, n], [accuracy, accuracy_md], api_name="student_accuracy"
    )
    return adapter_set


def launch_options(settings: Settings | None = None) -> dict:
    """What `launch()` needs besides host and port (Gradio 6 takes js and theme there); with the
    settings, also the exports folder, the one place outside its own that Gradio may serve from."""
    options = {"js": shortcuts_js(), "theme": gr.themes.Soft(), "footer_links": ["api"]}
    if settings is not None:
        options["allowed_paths"] = [str(hr.export_dir(settings))]
    return options
