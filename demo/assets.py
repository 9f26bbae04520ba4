"""What the page gets besides its components: the Rate tab's keyboard shortcuts (JavaScript and
their help line), the forms' guard against late replies (`FORMS_JS`, `adopt_js`), the marker of
a finished ask (`ASK_DONE_JS`) and the style
sheet (the highlighted criterion, the sticky rating bar, the question card and the phone layout)."""

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


def page_js() -> str:
    """What runs when the page loads: the forms' guard, then the Rate tab's keys (a digit picks
    that score of the highlighted criterion, if its scale has it)."""
    crits = [{"name": c.name, "values": list(c.values)} for c in criteria.CRITERIA]
    keys = SHORTCUTS_JS.replace("CRITERIA", json.dumps(crits)).replace("PREFERENCES", json.dumps(list(PREFERENCES)))
    return f"() => {{ ({FORMS_JS})(); ({keys})(); }}"


# A form (the Rate tab's item, Curate's edit box) belongs to one item at a time, its pin. From
# the click that asks for another item until that item is in place, the form is "loading": its
# text boxes are read-only and its choices take no clicks, so nothing is typed into an item on
# its way out. When the reply is in, `adopt` fills the edit box with the new item's text, unless
# the box holds an unsaved edit of another item (a reply nobody waited for): then the edit stays,
# pinned to its own item, and a note says that a new item is waiting. The form is marked "ready"
# (`data-state`, `data-item-id` on the panel, `data-for` on the edit box) only once the page
# shows the new values, so a test (or a rater) that waits for it never types into stale text.
FORMS_JS = """
() => {
  const forms = {
    rate: {panel: "rate-item", edit: "rate-edit", pin: "rate-pin", editFor: "rate-edit-for", boxes: ["rate-edit", "rate-comment"],
           shows: ["rate-question", "rate-rationale"],
           clicks: ["#rate-submit", "#rate-skip", "#rate-next", "#rater-sign-in"], enters: ["#rater-name", "#rater-token"]},
    curate: {panel: "curate-edited", edit: "curate-edited", pin: "curate-selected", editFor: "curate-edited-for", boxes: ["curate-edited"],
             shows: [], clicks: ["#curate-table .body-cell"], enters: ["#curate-selected"]},
  };
  const state = {};
  for (const name in forms) state[name] = {state: "ready", item: "", editFor: "", timer: null, typed: {}};
  const field = (id) => document.querySelector(`#${id} textarea, #${id} input`);
  const apply = (name) => {
    const f = forms[name], s = state[name], panel = document.getElementById(f.panel), edit = document.getElementById(f.edit);
    if (panel) { panel.dataset.state = s.state; panel.dataset.itemId = s.item; }
    if (edit) edit.dataset.for = s.editFor;
    for (const id of f.boxes) { const box = field(id); if (box) box.readOnly = s.state === "loading"; }
  };
  const shown = (id) => document.getElementById(id)?.innerText.trim() || "";
  const lock = (name) => {
    const s = state[name];
    s.state = "loading"; apply(name);
    s.before = Object.fromEntries(forms[name].shows.map((id) => [id, shown(id)]));  // what the page showed
    clearTimeout(s.timer);  // a request that never answers must not keep the form locked
    s.timer = setTimeout(() => { s.state = "ready"; apply(name); }, 30000);
  };
  const settle = (name, pin, text, editFor) => {
    // Ready once the page shows the reply: the pin's box holds the pin, the edit box its text,
    // and a new item's panels (question, rationale) are drawn: none empty, not all as before.
    const s = state[name], f = forms[name], started = performance.now(), same = pin === s.item;
    const check = () => {
      const pinBox = field(f.pin), editBox = field(f.edit), forBox = field(f.editFor);
      const now = f.shows.map(shown), before = f.shows.map((id) => (s.before || {})[id]);
      const drawn = !pin || !now.length || (now.every(Boolean) && (same || now.some((t, i) => t !== before[i])));
      const inPlace = (!pinBox || pinBox.value === pin) && (!editBox || editBox.value === text) && (!forBox || forBox.value === editFor);
      if (!(inPlace && drawn) && performance.now() - started < 10000) { requestAnimationFrame(check); return; }
      clearTimeout(s.timer);
      Object.assign(s, {state: "ready", item: pin, editFor: editFor}); apply(name);
    };
    requestAnimationFrame(check);
  };
  // Ask: "#ask-run" is data-state="running" from the click on Ask until its answer has come in
  // (or failed), then "done", with data-asks counting the asks done on this page.
  let asks = 0;
  const askRun = (running) => {
    const row = document.getElementById("ask-run");
    if (row) { row.dataset.state = running ? "running" : "done"; row.dataset.asks = String(asks); }
  };
  window.scicotForms = {
    state,
    busy: (name) => state[name].state === "loading",
    typed(name, values, boxes) {  // an event's input values, each box at its position as typed
      for (const [i, id] of Object.entries(boxes)) {
        const text = state[name].typed[id];
        if (text === undefined) continue;
        values[Number(i)] = text;
        const box = field(id);
        if (box && box.value !== text) { box.value = text; box.dispatchEvent(new Event("input", {bubbles: true})); }
      }
      return values;
    },
    askDone() { asks += 1; askRun(false); },
    adopt(name, pin, next, current, editFor, base, note) {
      pin = pin || ""; next = next || ""; current = current || ""; editFor = editFor || ""; base = base || "";
      let out;
      const typed = state[name].typed, edit = forms[name].edit;
      if (editFor === pin) out = [current, editFor, base, ""];  // the same item: the box stays as it is
      else if (editFor && current !== base) {
        out = [current, editFor, base, note.replace("{old}", editFor).replace("{new}", pin)];
        state[name].typed = edit in typed ? {[edit]: typed[edit]} : {};  // the new item's other boxes come empty
      } else { out = [next, pin, next, ""]; state[name].typed = {}; }
      settle(name, pin, out[0], out[1]);
      return out;
    },
  };
  // What the rater typed into a form's boxes, kept apart from the framework's copy of them: an
  // event that sends a box sends this (typed()), so a click at once after typing carries it.
  document.addEventListener("input", (e) => {
    for (const name in forms) for (const id of forms[name].boxes) if (e.target.closest?.(`#${id}`)) state[name].typed[id] = e.target.value;
  }, true);
  document.addEventListener("click", (e) => {
    for (const name in forms) if (forms[name].clicks.some((sel) => e.target.closest?.(sel))) lock(name);
    const go = e.target.closest?.("#ask-go");
    if (go && !go.disabled) askRun(true);
  }, true);
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey) return;
    for (const name in forms) if (forms[name].enters.some((sel) => e.target.closest?.(sel))) lock(name);
  }, true);
  new MutationObserver(() => { for (const name in forms) apply(name); })  // boxes mount late (a closed accordion)
    .observe(document.body, {childList: true, subtree: true});
}
"""


def adopt_js(form: str, note: str) -> str:
    """The `js` of the step after a reply that brings `form` a new item: inputs (pin, the new
    item's text, the edit box, the item it is pinned to, the text it was given); outputs (the
    edit box, its pin, its given text, the note). `note` may name {old} and {new}."""
    return f"(pin, next, current, editFor, base) => window.scicotForms.adopt({json.dumps(form)}, pin, next, current, editFor, base, {json.dumps(note)})"


def typed_js(form: str, count: int, boxes: dict[int, str]) -> str:
    """The `js` of an event that sends a form's boxes: its `count` input values, the box at each
    position of `boxes` (position: element id) as the rater typed it."""
    return f"(...values) => window.scicotForms.typed({json.dumps(form)}, values.slice(0, {count}), {json.dumps(boxes)})"


# Run when an ask has ended, answered or not: `#ask-run` then says data-state="done" and counts it.
ASK_DONE_JS = "() => { window.scicotForms?.askDone(); }"


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
    if (window.scicotForms?.busy("rate")) { e.preventDefault(); return; }  // no keys for an item on its way out
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
#rate-item[data-state="loading"] .score-row, #rate-item[data-state="loading"] #pref,
#rate-item[data-state="loading"] #rate-actions button { pointer-events: none; opacity: 0.6; }
.form-pin { display: none !important; }  /* a form's pins: in the page for its script, never shown */
.hint { color: var(--body-text-color-subdued); font-size: 0.9em; }
.score-row label { min-width: 0; }
@media (max-width: 640px) {
  #ask-run { flex-direction: column-reverse !important; }
  .gradio-container { padding: 4px !important; }
  .score-row .wrap label { padding: 6px 10px !important; }
  input.border-none { padding-right: 2em !important; text-overflow: ellipsis; }
}
"""
