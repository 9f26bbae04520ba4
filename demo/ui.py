"""`build_demo(deps)`: the Gradio app's layout and wiring, nothing else. Every event has an
`api_name`; handlers live in `handlers.py`, `handlers_curate.py` and `plots.py`; the raw API's
inputs are checked in `guard.py` before any of them runs."""

from __future__ import annotations

import functools
import os

# Gradio recomputes a pandas summary of up to 10,000 past events after every event (for its
# monitoring page) unless told otherwise: a third of the server's time under rating load.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")

import gradio as gr  # noqa: E402

from annotations import criteria
from annotations.criteria import DECISIONS, PREFERENCE_LABELS, PREFERENCES
from scicot_core.questions import MAX_STEM_CHARS
from scicot_core.settings import Settings

from . import handlers as h
from . import handlers_curate as hr
from . import plots
from .assets import ASK_DONE_JS, CSS, RELEASE_FOCUS_JS, adopt_js, page_js, shortcuts_help, typed_js
from .deps import Deps
from .guard import APP_KWARGS, GuardedBlocks, secret
from .render import LATEX
from .reporting import friendly, reported, reported_stream


def md(**kw) -> gr.Markdown:
    return gr.Markdown(latex_delimiters=LATEX, sanitize_html=True, **kw)


def student_dropdown(deps: Deps, **kw) -> gr.Dropdown:
    """A choice of adapter set (the student); the first set is the default."""
    sets = deps.students.names()
    return gr.Dropdown(sets, value=sets[0] if sets else None, label="Student", **kw)


def build_demo(deps: Deps) -> gr.Blocks:
    # Gradio keeps its own copy of every download and plot; drop those a day old, hourly.
    with GuardedBlocks(title="SciCoT Studio", delete_cache=(3600, 86_400)) as demo:
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
        with gr.Tab("Statistics", id="stats") as stats_page:
            stats_set = stats_tab(deps, stats_page)

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
        mode = gr.Radio([("Listed", "pick"), ("My own", "typed")], value="pick", label="Ask about", scale=1, elem_id="ask-mode")
        source = gr.Dropdown(sources, value=sources[0], label="From", scale=1, elem_id="ask-source")
        sample = gr.Dropdown(first, value=first[0][1] if first else None, label="Question", scale=3, elem_id="ask-question")
    card = md(value=h.question_card(deps, "pick", sources[0], first[0][1]) if first else "", elem_id="ask-card")
    with gr.Group(visible=False) as typed:
        stem = gr.Textbox(label="Your question", lines=2, max_length=MAX_STEM_CHARS, elem_id="ask-stem")
        choices = gr.Textbox(label="Choices, one per line (2 to 9; labelled A, B, C ...)", lines=4, elem_id="ask-choices")
        key = gr.Textbox(label="Correct label, if you know it (the teacher then explains it)", max_lines=1)
        offered = deps.teachers.choices()
        default = deps.settings.teacher if deps.settings.teacher in {name for _, name in offered} else offered[0][1]
        teacher = gr.Radio(offered, value=default, label="Teacher", elem_id="ask-teacher")
        with gr.Row():
            url = gr.Textbox(
                label="Endpoint base URL",
                placeholder="http://127.0.0.1:8000/v1",
                value=deps.settings.endpoint.base_url if deps.settings.endpoint else "",
                info=deps.teachers.endpoint_help(),
            )
            model = gr.Textbox(label="Endpoint model", value=deps.settings.endpoint.model if deps.settings.endpoint else "")
    with gr.Row(equal_height=True, elem_id="ask-run"):
        adapter_set = student_dropdown(deps, elem_id="ask-set", scale=2)
        go = gr.Button("Ask teacher and student", variant="primary", elem_id="ask-go", scale=1)
    status = gr.Markdown(elem_id="ask-status")
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
    baselines = md(elem_id="ask-baselines")
    info = gr.Markdown(elem_id="ask-info")
    with gr.Row():
        send = gr.Button("Send to the rating queue", interactive=False, elem_id="ask-send")
        sent = gr.Markdown(elem_id="ask-sent")

    def show_mode(m, src, sid):
        listed = m == "pick"
        card_md = gr.Markdown(value=h.question_card(deps, m, src, sid), visible=listed)
        return gr.Group(visible=not listed), card_md, gr.Dropdown(visible=listed), gr.Dropdown(visible=listed)

    mode.change(reported(show_mode, 4, 1), [mode, source, sample], [typed, card, source, sample], api_name="toggle_typed")

    def pick_source(src):
        listed = h.question_choices(deps, src)
        return gr.Dropdown(choices=listed, value=listed[0][1] if listed else None)

    source.change(friendly(pick_source), source, sample, api_name="question_list")
    sample.change(reported(functools.partial(h.question_card, deps), 1), [mode, source, sample], card, api_name="question_card")

    def run(m, src, sid, s, c, k, t, u, mo, aset):
        question = h.parse_question(deps, m, src, sid, s, c, k)
        yield (*(gr.skip() for _ in range(7)), "", gr.Button(interactive=False), "")
        for teacher_text, student_text, answer_text, probs_by_choice, base, inf, res in h.ask(deps, question, t, u, mo, aset):
            done = gr.Button(interactive=res["answer"] is not None)  # only the last step has the answer
            yield teacher_text, student_text, answer_text, probs_by_choice or None, base, inf, res, "", done, gr.skip()

    go.click(
        reported_stream(run, 10, 7),
        [mode, source, sample, stem, choices, key, teacher, url, model, adapter_set],
        [teacher_md, student_md, answer_md, probs, baselines, info, result, status, send, sent],
        api_name="ask",
    ).then(None, js=ASK_DONE_JS)

    def send_once(res):
        return h.send_to_queue(deps, res), res, gr.Button(interactive=False)

    send.click(reported(send_once, 3), result, [sent, result, send], api_name="send_to_queue", concurrency_limit=None)
    return adapter_set


def score_radios() -> list[gr.Radio]:
    """One row of choices per criterion of `criteria.CRITERIA`, in its order."""
    with gr.Row(elem_classes="score-row"):
        return [
            gr.Radio(
                list(c.values),
                label=f"{c.label}: {c.question} ({c.minimum} = {c.low}, {c.maximum} = {c.high})",
                elem_id=f"crit-{c.name}",
                min_width=240,
            )
            for c in criteria.CRITERIA
        ]


def rate_tab(deps: Deps, rater: gr.State, rationale_id: gr.State) -> None:
    with gr.Column(elem_id="rate-panel"):
        typed = not deps.settings.on_space  # on a Space only the Hugging Face login names a rater
        with gr.Row(equal_height=True):
            name = gr.Textbox(label="Your name", placeholder="e.g. ada", max_lines=1, elem_id="rater-name", scale=3, visible=typed)
            token = secret(
                gr.Textbox(
                    label="Your token (leave empty the first time: you get one)",
                    type="password",
                    max_lines=1,
                    elem_id="rater-token",
                    scale=3,
                    visible=typed,
                )
            )
            sign = gr.Button("Start rating", elem_id="rater-sign-in", scale=1)
            if deps.settings.on_space:
                gr.LoginButton()
        signed = secret(gr.Markdown(elem_id="rater-signed"), h.without_token)  # it shows a new token once
        progress = gr.HTML(elem_id="rate-progress")
        with gr.Column(visible=False, elem_id="rate-item") as item_box:
            question = md(elem_id="rate-question")
            with gr.Row(equal_height=False):
                with gr.Column():
                    gr.Markdown("#### Rationale to rate")
                    rationale = md(elem_id="rate-rationale")
                with gr.Column():
                    gr.Markdown("#### The other rationale(s) for this question")
                    other = md(elem_id="rate-other")
            scores = score_radios()
            preference = gr.Radio(
                [(PREFERENCE_LABELS[p], p) for p in PREFERENCES], label="Which rationale is better for this question?", elem_id="pref"
            )
            comment = gr.Textbox(label="Comment (optional)", lines=1, elem_id="rate-comment")
            with gr.Row(elem_id="rate-actions", equal_height=True):
                submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rate-submit", min_width=120)
                skip = gr.Button("Skip (k)", elem_id="rate-skip", min_width=80)
                nxt = gr.Button("Next (n)", elem_id="rate-next", min_width=80)
                status = gr.Markdown(elem_id="rate-status")
            with gr.Accordion("Edit this rationale", open=False):
                edit = gr.Textbox(label="Edited rationale (saved as a human edit linked to the original)", lines=4, elem_id="rate-edit")
                edit_note = gr.Markdown(elem_id="rate-edit-note")
                with gr.Row():
                    save = gr.Button("Save edit", elem_id="rate-save-edit")
                    discard = gr.Button("Discard edit", elem_id="rate-discard-edit")
            gr.Markdown(shortcuts_help(), elem_id="shortcuts-help")
            # The form's pins, in the page but not shown: the item the form belongs to, the text
            # its edit box should get, the item the edit box holds and the text it was given.
            pin, edit_next, edit_for, edit_base = (
                gr.Textbox(visible="hidden", elem_id=f"rate-{n}", elem_classes="form-pin")
                for n in ("pin", "edit-next", "edit-for", "edit-base")
            )

    item_outputs = [item_box, question, rationale, other, progress, rationale_id, pin, *scores, preference, comment, edit_next]
    n_item = len(item_outputs)
    waiting = "A new item is waiting ({new}). This box keeps your unsaved edit of {old}: copy it if you need it, then press Discard edit."

    def adopted(event):
        """After a reply with an item: the edit box gets its text, unless it holds an unsaved edit of another item."""
        return event.then(
            None, [pin, edit_next, edit, edit_for, edit_base], [edit, edit_for, edit_base, edit_note], js=adopt_js("rate", waiting)
        )

    def shown(item: tuple) -> tuple:
        return (gr.Column(visible=bool(item[4])), *item[:5], item[4], *item[5:])

    def sign_in(typed_name, typed_token, profile: gr.OAuthProfile | None = None, request: gr.Request = None):
        who, message = h.sign_in(deps, profile, typed_name, typed_token, h.client_of(request))
        return (who, message, *shown(h.next_item(deps, who)))

    for trigger in (sign.click, name.submit, token.submit):
        adopted(
            trigger(
                reported(sign_in, n_item + 2, 1),
                [name, token],
                [rater, signed, *item_outputs],
                api_name="sign_in" if trigger == sign.click else False,
                concurrency_limit=None,
            )
        ).then(None, js=RELEASE_FOCUS_JS)

    def moved_on(who, rid, edit_id, text):
        h.check_no_unsaved_edit(deps, who, rid, edit_id, text)
        return ("", *shown(h.next_item(deps, who)))

    # Every item-changing event carries what the form holds: the server refuses a form pinned to
    # another item, and moving on past an unsaved edit (a Submit saves it with the rating).
    adopted(
        nxt.click(
            reported(moved_on, n_item + 1),
            [rater, rationale_id, edit_for, edit],
            [status, *item_outputs],
            api_name="next_item",
            concurrency_limit=None,
            js=typed_js("rate", 4, {3: "rate-edit"}),
        )
    )

    def submit_then_next(who, rid, form_id, edit_id, text, *values):
        message, saved = h.submit_rating(deps, who, rid, form_id, edit_id, text, *values)
        # A saved edit is the box's given text now: the next item's text may replace it.
        return (message, *shown(h.next_item(deps, who)), text if saved else gr.skip())

    adopted(
        submit.click(
            reported(submit_then_next, n_item + 2),
            [rater, rationale_id, pin, edit_for, edit, *scores, preference, comment],
            [status, *item_outputs, edit_base],
            api_name="submit_rating",
            concurrency_limit=None,
            js=typed_js("rate", 5 + len(scores) + 2, {4: "rate-edit", 5 + len(scores) + 1: "rate-comment"}),
        )
    )

    def skip_then_next(who, rid, form_id, edit_id, text):
        message = h.skip_item(deps, who, rid, form_id, edit_id, text)
        return (message, *shown(h.next_item(deps, who)))

    adopted(
        skip.click(
            reported(skip_then_next, n_item + 1),
            [rater, rationale_id, pin, edit_for, edit],
            [status, *item_outputs],
            api_name="skip",
            concurrency_limit=None,
            js=typed_js("rate", 5, {4: "rate-edit"}),
        )
    )

    def saved(who, rid, edit_id, text):
        return h.save_edit(deps, who, rid, edit_id, text), text  # the saved text is the box's new given text

    save.click(
        reported(saved, 2),
        [rater, rationale_id, edit_for, edit],
        [status, edit_base],
        api_name="save_edit",
        concurrency_limit=None,
        js=typed_js("rate", 4, {3: "rate-edit"}),
    )
    discard.click(
        None,
        [pin, edit_next],
        [edit, edit_for, edit_base, edit_note],
        js='(pin, next) => window.scicotForms.adopt("rate", pin, next, "", "", "", "")',
        api_name=False,
    )


def curate_tab(deps: Deps, reviewer: gr.State) -> tuple[gr.Timer, gr.Markdown]:
    gr.Markdown("Reviewers only: accept, reject or edit rationales, export the curated set, and retrain the student on it.")
    with gr.Row():
        name = gr.Textbox(label="Reviewer name", max_lines=1, elem_id="reviewer-name")
        typed_secret = secret(gr.Textbox(label="Reviewer secret", type="password", max_lines=1, elem_id="reviewer-secret"))
        become = gr.Button("Sign in as reviewer", elem_id="reviewer-sign-in")
    who = gr.Markdown(elem_id="reviewer-status")
    low, high = criteria.scale()
    with gr.Row():
        min_mean = gr.Slider(0, high, value=0, step=0.5, label="Minimum mean rating")
        min_raters = gr.Number(value=0, precision=0, minimum=0, label="Minimum raters")
        max_spread = gr.Slider(0, high - low, value=high - low, step=0.5, label="Maximum disagreement (range of raters' means)")
        refresh = gr.Button("Show rationales", elem_id="curate-refresh")
    gr.Markdown("Click a row to open its rationale below (or paste its id).", elem_classes=["hint"])
    table = gr.Dataframe(
        headers=hr.CANDIDATE_HEADERS,
        elem_classes=["clickable-rows"],
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
    edited_note = gr.Markdown(elem_id="curate-edited-note")
    # As in the Rate tab: the text the edit box should get, the rationale it holds, its given text.
    edited_next, edited_for, edited_base = (
        gr.Textbox(visible="hidden", elem_id=f"curate-{n}", elem_classes="form-pin") for n in ("edited-next", "edited-for", "edited-base")
    )
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

    def sign_in(n, s, request: gr.Request = None):
        message = hr.become_reviewer(deps, n, s, h.client_of(request))
        return n.strip(), message

    def listed(*filters):
        rows = hr.candidates(deps, *filters)
        return rows, f"{len(rows)} rationale(s) listed." if rows else "No rationale matches these filters."

    become.click(reported(sign_in, 2, 1), [name, typed_secret], [reviewer, who], api_name="reviewer_sign_in", concurrency_limit=None)
    refresh.click(
        reported(listed, 2, 1), [reviewer, min_mean, min_raters, max_spread], [table, done], api_name="candidates", concurrency_limit=None
    )

    def on_select(evt: gr.SelectData, rows):
        rid = rows.iloc[evt.index[0], 0] if hasattr(rows, "iloc") else rows[evt.index[0]][0]
        return (rid, *hr.show_candidate(deps, rid))

    waiting = "Now showing {new}. This box keeps your unsaved edit of {old}: copy it if you need it, then select {old} again to record it."

    def adopted(event):
        return event.then(
            None,
            [selected, edited_next, edited, edited_for, edited_base],
            [edited, edited_for, edited_base, edited_note],
            js=adopt_js("curate", waiting),
        )

    adopted(table.select(reported(on_select, 3, 1), table, [selected, preview, edited_next], api_name=False))
    adopted(
        selected.submit(
            reported(lambda rid: (rid, *hr.show_candidate(deps, rid)), 3, 1),
            selected,
            [selected, preview, edited_next],
            api_name="show_candidate",
            concurrency_limit=None,
        )
    )

    def decided(who_, rid, choice, *rest):
        message = hr.decide(deps, who_, rid, choice, *rest[:4])
        rows = hr.candidates(deps, who_, *rest[4:])  # the decision shows in the table at once
        return message, rows, rest[2] if choice == "edit" else gr.skip()  # a recorded edit is the box's given text

    apply.click(
        reported(decided, 3, 0),
        [reviewer, selected, decision, reason, edited_for, edited, answer_key, min_mean, min_raters, max_spread],
        [done, table, edited_base],
        api_name="decide",
        concurrency_limit=None,
        js=typed_js("curate", 10, {5: "curate-edited"}),
    )

    def exported(*args):
        path = hr.export_file(deps, *args)
        return path, "Exported: the file is ready under Download."

    export.click(reported(exported, 2, 1), [reviewer, fmt, accepted_only, min_mean, min_raters], [download, done], api_name="export")
    append.click(
        reported(functools.partial(hr.append_accepted, deps), 1), reviewer, done, api_name="append_accepted", concurrency_limit=None
    )
    retrain.click(reported(functools.partial(hr.start_retrain, deps), 1), [reviewer, steps], retrain_md, api_name="retrain")
    cancel.click(reported(functools.partial(hr.cancel_retrain, deps), 1), reviewer, retrain_md, api_name="cancel_retrain")
    return timer, retrain_md


def stats_tab(deps: Deps, page: gr.Tab) -> gr.Dropdown:
    with gr.Row():
        gr.Markdown("Ratings submitted so far; they load when this tab opens.")
        refresh = gr.Button("Refresh statistics", elem_id="stats-refresh", scale=0, min_width=180)
    agreement = md(elem_id="stats-agreement")
    gr.Markdown("#### How raters scored each criterion, by who wrote the rationale")
    distribution = gr.Plot(show_label=False, elem_id="stats-distribution")
    gr.Markdown("#### Which rationale raters preferred")
    preference = gr.Plot(show_label=False, elem_id="stats-preference")
    for trigger in (refresh.click, page.select):
        trigger(
            friendly(functools.partial(plots.stats, deps)),
            None,
            [distribution, preference, agreement],
            api_name="stats" if trigger == refresh.click else False,
        )
    with gr.Row():
        adapter_set = student_dropdown(deps)
        n = gr.Slider(4, 100, value=12, step=4, label="Dev questions", elem_id="stats-dev-n")
        run = gr.Button("Measure accuracy", elem_id="stats-accuracy")
    accuracy_md = gr.Markdown(elem_id="stats-accuracy-md")
    accuracy = gr.Plot(show_label=False, elem_id="stats-accuracy-plot")
    run.click(
        friendly(functools.partial(plots.student_accuracy, deps)), [adapter_set, n], [accuracy, accuracy_md], api_name="student_accuracy"
    )
    return adapter_set


def launch_options(settings: Settings | None = None) -> dict:
    """What `launch()` needs besides host and port (Gradio 6 takes js and theme there), and how a
    misused keyword API is answered (`guard.APP_KWARGS`); with the settings, also the exports
    folder, the one place outside its own that Gradio may serve from."""
    options = {"js": page_js(), "css": CSS, "theme": gr.themes.Soft(), "footer_links": ["api"], "app_kwargs": APP_KWARGS}
    if settings is not None:
        options["allowed_paths"] = [str(hr.export_dir(settings))]
    return options
