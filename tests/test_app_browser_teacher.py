"""A live teacher in a real browser: while the operator's endpoint thinks (a scripted OpenAI-
compatible server that waits before replying), the teacher column says so and counts the
seconds; then its rationale replaces the line."""

import pytest
from conftest import FakeOpenAI, deps_from_env
from test_app_browser import pytestmark, shot  # noqa: F401 (pytestmark: same markers)
from test_app_browser_ux import open_page, text

REPLY = "Iron conducts heat and electricity. Thus, the answer is (A)."


@pytest.fixture
def slow_teacher():
    server = FakeOpenAI()
    server.script.append(("sleep", 3, REPLY))
    yield server
    server.close()


@pytest.fixture
def app_deps(app_deps, slow_teacher):
    """conftest's app dependencies with the operator's own endpoint: the slow teacher."""
    return deps_from_env(app_deps, {"SCICOT_TEACHER_URL": slow_teacher.url, "SCICOT_TEACHER_TIMEOUT": "30"})


def test_a_live_teacher_shows_it_is_thinking_with_the_seconds(app_server, slow_teacher):
    p, browser, page = open_page(app_server[0], {"width": 1400, "height": 1000})
    try:
        page.get_by_text("My own", exact=True).click()
        page.wait_for_selector("#ask-teacher", state="visible")
        page.fill("#ask-stem textarea", "Which one is a metal?")
        page.fill("#ask-choices textarea", "iron\nwood")
        page.get_by_text("Remote endpoint", exact=True).click()
        page.click("#ask-go")
        page.wait_for_function("/Thinking… [12] s/.test(document.querySelector('#teacher-md').innerText)", timeout=30_000)
        assert "Waiting for the teacher" in text(page, "#student-md")
        shot(page, "teacher-thinking")
        page.wait_for_function(f"document.querySelector('#teacher-md').innerText.includes({REPLY[:20]!r})", timeout=60_000)
        page.wait_for_selector('#ask-run[data-state="done"][data-asks="1"]', timeout=60_000)
        assert "probability" in text(page, "#answer-md")
        assert "Thinking" not in text(page, "#teacher-md") and len(slow_teacher.requests) == 1
    finally:
        browser.close()
        p.stop()
