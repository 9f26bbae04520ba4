"""The app in a real browser (Debian's Chromium through Playwright): ask -> rate with the
keyboard -> edit -> curate -> export download -> stats, with screenshots saved as artifacts,
and stored HTML staying inert."""

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SCICOT_SCREENSHOTS") or Path(__file__).resolve().parents[1] / "artifacts" / "screenshots")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture
def page(app_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"a dialog opened: {d.message}")))
        page.goto(app_server[0])
        page.wait_for_selector("#ask-go", timeout=60_000)
        yield page
        browser.close()


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def tab(page, name):
    page.get_by_role("tab", name=name, exact=True).click()


PANELS = {"rate": "#rate-item", "curate": "#curate-edited"}


def ready(page, form: str = "rate", other_than: str = "", timeout: float = 30_000) -> str:
    """Wait until `form` shows an item other than `other_than` and the page holds its values: the
    app marks the form's panel `data-state="ready"` with the item's id only then. Returns the id."""
    page.wait_for_function(
        """([panel, other]) => { const p = document.querySelector(panel);
             return !!p && p.dataset.state === "ready" && !!p.dataset.itemId && p.dataset.itemId !== other; }""",
        arg=[PANELS[form], other_than],
        timeout=timeout,
    )
    return page.get_attribute(PANELS[form], "data-item-id")


def ask(page, timeout: float = 120_000) -> None:
    """Click Ask and wait until this ask has ended (answered or refused): the app counts the asks
    done on the page in `#ask-run`'s data-asks, so an answer left from an earlier ask never passes."""
    done = int(page.get_attribute("#ask-run", "data-asks") or 0)
    page.click("#ask-go")
    page.wait_for_selector(f'#ask-run[data-state="done"][data-asks="{done + 1}"]', timeout=timeout)


def drawn(page, selector: str, timeout: float = 30_000) -> None:
    """Wait until the chart at `selector` (a matplotlib figure, sent as an image) has loaded."""
    page.wait_for_function(
        "(s) => { const i = document.querySelector(s + ' img'); return !!i && i.complete && i.naturalWidth > 0; }",
        arg=selector,
        timeout=timeout,
    )


def status_of(page, selector: str, part: str, timeout: float = 30_000) -> None:
    """Wait until the status line at `selector` says `part` (each status line is set by the reply it reports)."""
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)", arg=[selector, part], timeout=timeout)
    except TimeoutError:
        shown = page.inner_text(selector) if page.locator(selector).count() else "(not in the page)"
        raise AssertionError(f"{selector} never said {part!r}; it says {shown!r}") from None


def test_the_whole_flow(page, app_server):
    deps = app_server[1]
    ask(page)
    assert "probability" in page.inner_text("#answer-md")
    assert "hand-written reference rationale" in page.inner_text("#teacher-md")
    assert all(f"({label})" in page.inner_text("#answer-probs") for label in "ABCD")
    shot(page, "1-ask")
    page.click("#ask-send")
    page.wait_for_function("document.querySelector('#ask-sent').innerText.includes('Queued 2')")

    tab(page, "Rate")
    page.fill("#rater-name textarea, #rater-name input", "ann")
    page.click("#rater-sign-in")
    first = ready(page)
    page.click("#shortcuts-help")  # focus off the text box, as a rater would
    for key in ("5", "4", "5", "t", "Enter"):
        page.keyboard.press(key)
    second = ready(page, other_than=first)
    status_of(page, "#rate-status", "Saved your rating")
    [rating] = deps.store.ratings()
    assert (rating["scores"], rating["preference"], rating["rater"]) == (
        {"correctness": 5, "clarity": 4, "supports_answer": 5},
        "teacher",
        "ann",
    )
    shot(page, "2-rate")

    # edit the item now shown: the edit box is pinned to it
    assert "1</b> done" in page.inner_html("#rate-progress")
    page.get_by_text("Edit this rationale").click()
    assert page.get_attribute("#rate-edit", "data-for") == second
    assert page.input_value("#rate-edit textarea") == deps.store.rationale(second)["text"]
    page.fill("#rate-edit textarea", "Friction balances the push at constant speed. Thus, the answer is (C).")
    page.click("#rate-save-edit")
    status_of(page, "#rate-status", "Saved your edit")
    assert [e["edits_id"] for e in deps.store.db.query("select edits_id from rationales where source = 'human'")] == [second]

    tab(page, "Curate & export")
    page.fill("#reviewer-name input, #reviewer-name textarea", "rev")
    page.fill("#reviewer-secret input", "sesame")
    page.click("#reviewer-sign-in")
    page.wait_for_function("document.querySelector('#reviewer-status').innerText.includes('is a reviewer')")
    page.click("#curate-refresh")
    page.wait_for_function("document.querySelector('#curate-table').innerText.includes('human')", timeout=30_000)
    page.fill("#curate-selected input, #curate-selected textarea", rating["rationale_id"])
    page.press("#curate-selected input, #curate-selected textarea", "Enter")
    assert ready(page, "curate") == rating["rationale_id"]
    page.click("#curate-apply")
    status_of(page, "#curate-done", "accept recorded")
    page.wait_for_function("document.querySelector('#curate-table').innerText.includes('accept')")  # shown at once
    assert page.eval_on_selector("#curate-table tbody tr", "r => getComputedStyle(r).cursor") == "pointer"
    page.click("#curate-export")
    link = page.wait_for_selector("#curate-download a", timeout=30_000)
    with page.expect_download() as download:
        link.click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["rationale_id"] == rating["rationale_id"]

    page.click("#curate-append")
    page.wait_for_function("document.querySelector('#curate-done').innerText.includes('1 accepted rationale(s) from the store')")
    page.fill("#curate-steps input", "2")
    page.click("#curate-retrain")
    page.wait_for_function("document.querySelector('#retrain-status').innerText.includes('Retrain')", timeout=30_000)
    page.wait_for_function("document.querySelector('#retrain-status').innerText.includes('choose')", timeout=180_000)
    page.wait_for_function("document.querySelector('#retrain-status').innerText.includes('agrees with the teacher')", timeout=120_000)
    status = page.inner_text("#retrain-status")
    assert "On the same 4" in status and str(deps.settings.cache_dir) not in status  # the comparison, no server paths
    shot(page, "3-curate")
    tab(page, "Ask")
    new_student = f"retrained {deps.retrain.snapshot()['name']}"
    page.click("#ask-set input")
    page.get_by_role("option", name=new_student).click()
    ask(page)
    # the retrained stages write the student column this time (the first ask had the bare base)
    assert "with adapters answer, rationale" in page.inner_text("#student-md")
    assert "probability" in page.inner_text("#answer-md")
    [retrained] = [p for p in (deps.settings.cache_dir / "retrained").iterdir() if not p.name.endswith(".partial")]
    assert "." in str(retrained) and " " in str(retrained)  # the loop ran in a folder whose path has both
    shot(page, "3b-ask-with-the-retrained-student")

    tab(page, "Statistics")
    page.click("#stats-refresh")
    page.wait_for_function("document.querySelector('#stats-agreement').innerText.includes('1 submitted ratings')", timeout=30_000)
    drawn(page, "#stats-distribution")
    shot(page, "4-stats")


def test_stored_html_stays_inert(page, app_server):
    deps = app_server[1]
    from scicot_core.questions import Rationale, sample_items

    q = sample_items()[3][0]
    deps.store.add_questions([q])
    rid = deps.store.add_rationale(Rationale(q.id, "Safe text for now.", "teacher", "m"))
    # Write paths refuse active HTML, so put it in the file directly, as another tool might.
    attack = '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> **bold** $E=mc^2$'
    with sqlite3.connect(deps.store.path) as conn:
        conn.execute("update rationales set text = ? where id = ?", (attack, rid))
    tab(page, "Rate")
    page.fill("#rater-name textarea, #rater-name input", "eve")
    page.click("#rater-sign-in")
    assert ready(page) == rid
    assert "onerror" in page.inner_text("#rate-rationale")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#rate-rationale img").count() == 0 and page.locator("#rate-rationale script").count() == 0
    assert page.locator("#rate-rationale strong").inner_text() == "bold"
    shot(page, "5-inert-html")
