"""What a rater and a visitor meet in a real browser (Chromium through Playwright): rating by
keyboard alone, errors that keep the form, the Ask card and its Send button, statistics that
load by themselves, and the phone layout. Screenshots go where `test_app_browser` puts them."""

import pytest
from test_app_browser import ARTIFACTS, CHROMIUM, FLAGS, ask, pytestmark, ready, shot, status_of, tab  # noqa: F401 (pytestmark: same markers)

from scicot_core.questions import Rationale, sample_items

PHONE = {"width": 390, "height": 844}


def open_page(url, viewport):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    page.wait_for_selector("#ask-go", timeout=60_000)
    return p, browser, page


@pytest.fixture
def desktop(app_server):
    p, browser, page = open_page(app_server[0], {"width": 1400, "height": 1000})
    yield page
    browser.close()
    p.stop()


@pytest.fixture
def phone(app_server):
    p, browser, page = open_page(app_server[0], PHONE)
    yield page
    browser.close()
    p.stop()


def queue_two(deps):
    """One question with a teacher and a student rationale: two items to rate."""
    q, text = sample_items()[0]
    deps.store.add_question_with_rationales(
        q, [Rationale(q.id, text, "teacher", "ref"), Rationale(q.id, "Friction equals the push. Thus, the answer is (C).", "student", "s")]
    )
    return q


def text(page, selector):
    return page.inner_text(selector) if page.locator(selector).count() else ""


def no_error_badges(page):
    return page.get_by_text("Error", exact=True).count() == 0


def test_rate_an_item_with_five_keystrokes_and_a_missed_score_keeps_the_form(desktop, app_server):
    page, deps = desktop, app_server[1]
    queue_two(deps)
    tab(page, "Rate")
    assert page.locator("#rate-submit").count() == 0 and page.locator("#crit-correctness").count() == 0  # nothing before sign-in
    page.fill("#rater-name input, #rater-name textarea", "kim")
    page.press("#rater-name input, #rater-name textarea", "Enter")
    first = ready(page)
    page.wait_for_function("document.activeElement === document.body || !document.activeElement.closest('#rater-name')")
    assert "0</b> done" in page.inner_html("#rate-progress") and page.locator("#rate-progress progress").count() == 1
    active = page.locator("#crit-correctness")
    assert "crit-active" in active.get_attribute("class")
    assert active.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "ux-1-rate-ready.png"))  # the first screen, as the rater sees it
    box = page.locator("#rate-submit").bounding_box()
    assert box["y"] + box["height"] <= 1000  # Submit in view without scrolling

    for key in ("5", "4", "5", "t", "Enter"):  # five keystrokes, no mouse
        page.keyboard.press(key)
    second = ready(page, other_than=first)
    status_of(page, "#rate-status", "Saved your rating")
    [rating] = deps.store.ratings()
    assert rating["scores"] == {"correctness": 5, "clarity": 4, "supports_answer": 5} and rating["preference"] == "teacher"
    assert "1</b> done" in page.inner_html("#rate-progress")

    page.keyboard.press("3")
    page.keyboard.press("Enter")  # clarity and supports answer missing
    status_of(page, "#rate-status", "Score every criterion")
    assert ready(page) == second  # the same item, its form kept
    assert "Clarity, Supports answer" in text(page, "#rate-status") and no_error_badges(page)
    assert page.locator("#crit-correctness input").nth(2).is_checked()  # the score chosen stays
    assert len(deps.store.ratings()) == 1
    shot(page, "ux-2-rate-missed-score")

    page.keyboard.press("k")
    status_of(page, "#rate-progress", "Nothing left to rate")
    page.wait_for_selector("#rate-submit", state="detached")
    shot(page, "ux-3-rate-nothing-left")


def test_ask_shows_the_question_sends_once_and_an_error_keeps_the_answer(desktop, app_server):
    page = desktop
    q = sample_items()[0][0]
    assert q.stem in text(page, "#ask-card") and all(f"({c.label}) {c.text}" in text(page, "#ask-card") for c in q.choices)
    assert page.locator("#ask-send").is_disabled() and not page.locator("#ask-teacher").is_visible()
    ask(page)
    assert "probability" in text(page, "#answer-md")
    assert "Baselines" in text(page, "#ask-baselines") and " ms" not in text(page, "#ask-info") + text(page, "#student-md")
    assert "/" not in text(page, "#student-md").split("\n")[-1]  # the model by name, not the server's folder
    page.wait_for_function("!document.querySelector('#ask-send').disabled")
    page.click("#ask-send")
    page.wait_for_function("document.querySelector('#ask-sent').innerText.includes('Queued 2')")
    assert page.locator("#ask-send").is_disabled()
    answer = text(page, "#answer-md")

    page.get_by_text("My own", exact=True).click()
    page.wait_for_selector("#ask-teacher", state="visible")
    assert not any(page.locator(p).is_visible() for p in ("#ask-card", "#ask-source", "#ask-question"))
    page.fill("#ask-stem textarea", "Why?")
    page.fill("#ask-choices textarea", "only one")
    ask(page, timeout=30_000)
    assert "Give 2 to 9 choices" in text(page, "#ask-status")
    assert text(page, "#answer-md") == answer and no_error_badges(page)
    shot(page, "ux-4-ask-error-keeps-answer")
    page.get_by_text("Listed", exact=True).click()  # back to the listed question, as it was
    page.wait_for_selector("#ask-card", state="visible")
    assert q.stem in text(page, "#ask-card") and q.id in page.input_value("#ask-question input")


def test_statistics_load_when_the_tab_opens(desktop, app_server):
    deps = app_server[1]
    queue_two(deps)
    tab(desktop, "Statistics")
    desktop.wait_for_function("document.querySelector('#stats-agreement')?.innerText.includes('submitted ratings')", timeout=30_000)
    assert "0.8 or more is good" in text(desktop, "#stats-agreement")
    desktop.wait_for_selector("#stats-distribution img", timeout=30_000)
    desktop.fill("#stats-dev-n input[type=number]", "4")
    desktop.press("#stats-dev-n input[type=number]", "Enter")
    desktop.click("#stats-accuracy")
    desktop.wait_for_function("document.querySelector('#stats-accuracy-md').innerText.includes('4 SciCoT sample set')", timeout=120_000)
    desktop.wait_for_selector("#stats-accuracy-plot img", timeout=30_000)
    shot(desktop, "ux-5-stats-on-open")


def test_phone_ask_and_rate(phone, app_server):
    page, deps = phone, app_server[1]
    page.screenshot(path=str(ARTIFACTS / "ux-6-phone-ask.png"))  # the first screen
    box = page.locator("#ask-go").bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"]  # Ask on the first screen
    assert sample_items()[0][0].stem in text(page, "#ask-card")
    for picker in ("#ask-source", "#ask-question"):  # the arrow beside the text, not over it
        text_right, arrow_left = page.evaluate(
            """(id) => { const i = document.querySelector(id + ' input'); const r = i.getBoundingClientRect();
              const arrow = [...document.querySelectorAll(id + ' svg')].find(s => s.getBoundingClientRect().width > 0);
              return [r.right - parseFloat(getComputedStyle(i).paddingRight), arrow.getBoundingClientRect().left]; }""",
            picker,
        )
        assert text_right <= arrow_left
    queue_two(deps)
    tab(page, "Rate")
    page.fill("#rater-name input, #rater-name textarea", "pat")
    page.press("#rater-name input, #rater-name textarea", "Enter")
    ready(page)
    tops = {round(b["y"]) for b in (label.bounding_box() for label in page.locator("#crit-clarity label").all()) if b}
    assert len(tops) == 1  # the five scores on one line
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#rate-submit").bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"]  # the sticky bar keeps Submit on screen
    shot(page, "ux-7-phone-rate")


def test_a_typed_question_without_a_teacher_model_shows_the_memorys_facts_labelled(desktop, app_server):
    page = desktop
    page.get_by_text("My own", exact=True).click()
    page.wait_for_selector("#ask-teacher", state="visible")
    assert page.locator("#ask-teacher input[value='memory']").is_checked()  # the default with no endpoint
    page.fill("#ask-stem textarea", "Which part of a plant makes food from sunlight?")
    page.fill("#ask-choices textarea", "roots\nleaves\nflowers")
    ask(page)
    shown = text(page, "#teacher-md")
    assert "not written for this question" in shown and "sample set's rationale" in shown and "sunlight" in shown.lower()
    assert no_error_badges(page)
    shot(page, "ux-5-typed-question-memory-teacher")
