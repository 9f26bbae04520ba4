"""What the page gets besides its components: the Rate tab's keyboard shortcuts (JavaScript and
their help line) and the style sheet (the highlighted criterion, the sticky rating bar, the
question card and the phone layout)."""

from __future__ import annotations

import json

from annotations import criteria
from annotations.criteria import PREFERENCES


def shortcuts_help() -> str:
    low, high = criteria.scale()
    return f"""**Keyboard shortcuts** (when not typing in a text box):
`{low}`–`{high}` score the highlighted criterion and move to the next · `↑`/`↓` change criterion ·
`t` teacher's better · `s` student's better · `i` tie · `b` both bad ·
`Enter` submit · `k` skip · `n` next item"""


def shortcuts_js() -> str:
    """The Rate tab's keys; a digit picks that score of the highlighted criterion, if its scale has it."""
    crits = [{"name": c.name, "values": list(c.values)} for c in criteria.CRITERIA]
    return SHORTCUTS_JS.replace("CRITERIA", json.dumps(crits)).replace("PREFERENCES", json.dumps(list(PREFERENCES)))


# Choices are found by position (the order of the data in `criteria`), not by the inputs' value
# attributes, which show the labels. The highlight is a class: inline styles lose to the theme's.
SHORTCUTS_JS = """
() => {
  const crits = CRITERIA;
  const prefs = PREFERENCES;
  const prefKeys = {t: "teacher", s: "student", i: "tie", b: "both_bad"};
  let active = 0;
  const mark = () => crits.forEach((c, i) => {
    document.getElementById("crit-" + c.name)?.classList.toggle("crit-active", i === active);
  });
  const pick = (id, index) => {
    const input = document.querySelectorAll(`#${id} input[type="radio"]`)[index];
    if (input) input.click();
    return !!input;
  };
  const restart = () => { active = 0; mark(); };
  document.addEventListener("keydown", (e) => {
    const panel = document.getElementById("rate-item");
    if (!panel || panel.offsetParent === null || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "radio" && t.type !== "checkbox"))) return;
    const crit = crits[active];
    if (e.key >= "0" && e.key <= "9") {
      if (pick("crit-" + crit.name, crit.values.indexOf(Number(e.key)))) { active = (active + 1) % crits.length; mark(); }
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      active = (active + (e.key === "ArrowDown" ? 1 : crits.length - 1)) % crits.length; mark();
    } else if (prefKeys[e.key]) { pick("pref", prefs.indexOf(prefKeys[e.key])); }
    else if (e.key === "Enter") { document.getElementById("rate-submit")?.click(); restart(); }
    else if (e.key === "k") { document.getElementById("rate-skip")?.click(); restart(); }
    else if (e.key === "n") { document.getElementById("rate-next")?.click(); restart(); }
    else return;
    e.preventDefault();
  });
  new MutationObserver(() => { if (!document.querySelector(".crit-active")) mark(); })
    .observe(document.body, {childList: true, subtree: true});
}
"""

# Run after signing in: the name box lets go of the keyboard, so the shortcuts work at once.
RELEASE_FOCUS_JS = "() => { document.activeElement?.blur(); }"

# The container's overflow: hidden would stop the action bar from sticking; clip cuts the same
# overflow without making the container a scroll box.
CSS = """
.gradio-container { overflow: clip !important; }
.crit-active { outline: 3px solid #f59e0b !important; outline-offset: 2px; background: #fffbeb !important; }
#rate-actions { position: sticky; bottom: 0; z-index: 20; padding: 8px 0;
  background: var(--background-fill-primary); border-top: 1px solid var(--border-color-primary); }
.rate-progress { display: flex; align-items: center; gap: 0.5em; flex-wrap: wrap; }
.rate-progress progress { width: min(320px, 100%); height: 0.9em; accent-color: #f59e0b; }
#ask-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 4px 12px; }
#answer-probs .label-name, #answer-probs .text { white-space: normal !important; overflow-wrap: anywhere; }
.score-row .wrap { flex-wrap: nowrap !important; }
.clickable-rows tbody tr { cursor: pointer; }
.clickable-rows tbody tr:hover td { background: var(--background-fill-secondary) !important; }
.hint { color: var(--body-text-color-subdued); font-size: 0.9em; }
.score-row label { min-width: 0; }
@media (max-width: 640px) {
  #ask-run { flex-direction: column-reverse !important; }
  .gradio-container { padding: 4px !important; }
  .score-row .wrap label { padding: 6px 10px !important; }
  input.border-none { padding-right: 2em !important; text-overflow: ellipsis; }
}
"""
