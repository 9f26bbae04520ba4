"""Late replies against what a rater or reviewer types, in a real browser with the server made
slow on purpose: an item's form is pinned to that item, nothing typed is overwritten by a reply
that arrives later, and a save for another item than the current one is refused."""

import threading
import time

import pytest
from test_app_browser import pytestmark, ready, shot, status_of, tab  # noqa: F401 (pytestmark: same markers)
from test_app_browser_ux import desktop  # noqa: F401 (a fixture, behind `page`)

from scicot_core.questions import Rationale, sample_items

SLOW_S = 1.5


@pytest.fixture
def slow(app_server, monkeypatch):
    """The server takes SLOW_S seconds to find a rater's next item and to show a candidate."""
    deps = app_server[1]
    for name in ("next_item", "rationale"):
        original = getattr(deps.store, name)

        def delayed(*args, _original=original, **kwargs):
            time.sleep(SLOW_S)
            return _original(*args, **kwargs)

        monkeypatch.setattr(deps.store, name, delayed)
    return deps


@pytest.fixture
def held(app_server, monkeypatch):
    """The server finds a rater's next item only once the test lets it (`held.set()`): a reply
    as late as the test needs, however slow the machine (at most 60 s, so a test never hangs)."""
    deps = app_server[1]
    gate = threading.Event()
    original = deps.store.next_item
    calls = []

    def waiting(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) > 1:  # the first is the sign-in's own item
            gate.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(deps.store, "next_item", waiting)
    gate.deps, gate.calls = deps, calls
    return gate


@pytest.fixture
def page(desktop):  # noqa: F811 (the imported fixture, by name)
    return desktop


def queue(deps, n: int) -> list[str]:
    """n questions with one teacher rationale each: n items to rate."""
    ids = []
    for q, text in sample_items()[:n]:
        ids += deps.store.add_question_with_rationales(q, [Rationale(q.id, text, "teacher", "ref")])
    return ids


def edits(deps) -> list[dict]:
    return list(deps.store.db.query("select edits_id, text, author from rationales where source = 'human' order by created_utc"))


def sign_in(page, name="ann") -> str:
    tab(page, "Rate")
    page.fill("#rater-name input, #rater-name textarea", name)
    page.click("#rater-sign-in")
    return ready(page, timeout=60_000)


def test_submit_then_type_and_save_at_once_five_times_keeps_every_edit(page, app_server, slow):
    deps = slow
    queue(deps, 6)
    shown = sign_in(page)
    page.get_by_text("Edit this rationale").click()
    typed = []
    for i in range(5):
        page.click("#shortcuts-help")
        for key in ("4", "4", "4", "Enter"):
            page.keyboard.press(key)
        # At once, with the next item still on its way (the server takes 1.5 s): the form holds
        # the rater off until that item is in place, so the typing lands on it and stays.
        assert page.get_attribute("#rate-item", "data-state") == "loading"
        text = f"Edit number {i}: friction balances the push. Thus, the answer is (C)."
        page.fill("#rate-edit textarea", text)
        page.click("#rate-save-edit")
        status_of(page, "#rate-status", "Saved your edit")
        now = page.get_attribute("#rate-item", "data-item-id")
        assert now != shown and page.input_value("#rate-edit textarea") == text
        typed.append((now, text))
        shown = now
    assert [(e["edits_id"], e["text"]) for e in edits(deps)] == typed
    assert len(deps.store.ratings()) == 5


def test_a_reply_for_another_item_keeps_an_unsaved_edit_and_says_so(page, app_server, slow):
    deps = slow
    first, second = queue(deps, 2)
    assert sign_in(page) == first
    page.get_by_text("Edit this rationale").click()
    page.fill("#rate-edit textarea", "My unsaved edit of the first item.")
    # A reply nobody waited for (the form is ready, not loading), bringing the second item:
    kept = page.evaluate(
        """([pin, next]) => window.scicotForms.adopt("rate", pin, next, "My unsaved edit of the first item.",
             document.querySelector('#rate-edit').dataset.for, "the text it was given", "waiting {new}, kept {old}")""",
        [second, "the second item's text"],
    )
    assert kept == ["My unsaved edit of the first item.", first, "the text it was given", f"waiting {second}, kept {first}"]
    clean = page.evaluate("""([pin, next]) => window.scicotForms.adopt("rate", pin, next, "", "", "", "x")""", [second, "its text"])
    assert clean == ["its text", second, "its text", ""]  # with nothing typed, the new item's text comes in


def test_typing_after_the_lock_ran_out_keeps_the_edit_when_the_late_reply_comes(page, app_server, held):
    """The whole path in the page: Skip is on its way, the form's lock runs out (as its watchdog
    lets it, for a reply that takes too long), the rater types, and then the next item arrives."""
    deps = held.deps
    first, second = queue(deps, 2)
    assert sign_in(page) == first
    page.get_by_text("Edit this rationale").click()
    page.click("#rate-skip")
    page.wait_for_function("window.scicotForms.state.rate.state === 'loading'")
    page.evaluate("() => { window.scicotForms.state.rate.state = 'ready'; }")  # what the 30 s watchdog does, at once
    page.wait_for_function("!document.querySelector('#rate-edit textarea').readOnly")
    page.fill("#rate-edit textarea", "My unsaved edit of the first item.")
    held.set()  # only now does the next item come
    assert ready(page, other_than=first) == second
    status_of(page, "#rate-edit-note", f"A new item is waiting ({second})")
    assert page.input_value("#rate-edit textarea") == "My unsaved edit of the first item."
    assert page.get_attribute("#rate-edit", "data-for") == first  # still pinned to its own item
    assert not any(page.locator(f"#rate-{n}").is_visible() for n in ("pin", "edit-next", "edit-for", "edit-base"))  # pins stay out of sight
    shot(page, "race-late-reply-keeps-the-edit")
    page.click("#rate-discard-edit")
    page.wait_for_function(f"document.querySelector('#rate-edit').dataset.for === {second!r}")
    assert page.input_value("#rate-edit textarea") == deps.store.rationale(second)["text"]
    assert edits(deps) == []  # nothing was saved for either item, and the skip of the first stands


def test_a_save_sends_what_was_typed_even_if_the_box_was_set_again_after_it(page, app_server):
    """A loaded run (5 of 20) saved an item's own text after a fill and a click at once: the
    page's copy of the box had not taken the typing. The box is set back here without an input
    event, as such an update does; the save still carries the typing, and the box shows it again."""
    deps = app_server[1]
    first, _ = queue(deps, 2)
    assert sign_in(page) == first
    page.get_by_text("Edit this rationale").click()
    page.fill("#rate-edit textarea", "Typed, then set back. Thus, the answer is (C).")
    page.evaluate("(text) => { document.querySelector('#rate-edit textarea').value = text; }", deps.store.rationale(first)["text"])
    page.click("#rate-save-edit")
    status_of(page, "#rate-status", "Saved your edit")
    assert [e["text"] for e in edits(deps)] == ["Typed, then set back. Thus, the answer is (C)."]
    assert page.input_value("#rate-edit textarea") == "Typed, then set back. Thus, the answer is (C)."


def test_discard_restores_the_items_text_and_submit_saves_an_unsaved_edit(page, app_server):
    # (Next past an unsaved edit is refused: test_app_handlers covers it; in the browser, a Next
    # clicked at once after typing reached the server without the typing once in a CI-like run.)
    deps = app_server[1]
    first, second = queue(deps, 2)
    assert sign_in(page) == first
    page.get_by_text("Edit this rationale").click()
    page.fill("#rate-edit textarea", "A better rationale. Thus, the answer is (C).")
    page.click("#rate-discard-edit")
    page.wait_for_function("document.querySelector('#rate-edit textarea').value.startsWith('A better') === false")
    assert page.input_value("#rate-edit textarea") == deps.store.rationale(first)["text"]
    page.fill("#rate-edit textarea", "Typed again. Thus, the answer is (C).")
    page.click("#shortcuts-help")
    for key in ("5", "5", "5", "Enter"):
        page.keyboard.press(key)
    assert ready(page, other_than=first) == second
    status_of(page, "#rate-status", "and your edit as")
    assert [(e["edits_id"], e["text"]) for e in edits(deps)] == [(first, "Typed again. Thus, the answer is (C).")]
    assert page.input_value("#rate-edit textarea") == deps.store.rationale(second)["text"]  # the new item's own text


def test_curate_types_into_the_rationale_it_shows(page, app_server, slow):
    deps = slow
    first, second = queue(deps, 2)
    tab(page, "Curate & export")
    page.fill("#reviewer-name input, #reviewer-name textarea", "rev")
    page.fill("#reviewer-secret input", "sesame")
    page.click("#reviewer-sign-in")
    status_of(page, "#reviewer-status", "is a reviewer")
    page.click("#curate-refresh")
    status_of(page, "#curate-table", "teacher", timeout=60_000)
    for rid in (first, second):
        page.locator("#curate-table .body-cell", has_text=rid).first.click()
        page.fill("#curate-edited textarea", f"A reviewer's edit of {rid}.")  # held until that rationale is in
        assert page.get_attribute("#curate-edited", "data-item-id") == rid
        page.locator("#curate-decision").get_by_text("edit", exact=True).click()
        page.click("#curate-apply")
        status_of(page, "#curate-done", f"edit recorded for {rid}", timeout=60_000)
    assert [(e["edits_id"], e["text"]) for e in edits(deps)] == [(r, f"A reviewer's edit of {r}.") for r in (first, second)]


def test_typing_a_new_question_while_an_answer_streams_keeps_it(page, app_server, monkeypatch):
    from demo import handlers

    original = handlers.asking.ask

    def slow_ask(*args, **kwargs):
        for event in original(*args, **kwargs):
            time.sleep(0.3)
            yield event

    monkeypatch.setattr(handlers.asking, "ask", slow_ask)
    page.get_by_text("My own", exact=True).click()
    page.fill("#ask-stem textarea", "Which one is a metal?")
    page.fill("#ask-choices textarea", "iron\nwood")
    page.click("#ask-go")
    page.wait_for_function("document.querySelector('#student-md').innerText.length > 0", timeout=60_000)
    page.fill("#ask-stem textarea", "Which one floats on water?")  # the next question, typed while the answer comes in
    page.fill("#ask-choices textarea", "stone\ncork")
    page.wait_for_selector('#ask-run[data-state="done"][data-asks="1"]', timeout=120_000)
    assert page.input_value("#ask-stem textarea") == "Which one floats on water?"
    assert page.input_value("#ask-choices textarea") == "stone\ncork"
    assert any(c in page.inner_text("#answer-md") for c in ("iron", "wood"))  # the answer is to the question asked
