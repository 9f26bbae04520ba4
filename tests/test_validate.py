"""The store's text check: active content refused however it is spelled, science prose kept
(false positives matter as much: a rater must be able to write "Data: the table shows ...")."""

import json

import pytest
from conftest import SHARED_DATA, needs_shared

from annotations import validate
from scicot_core.errors import DataError

ACTIVE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<img <x onerror=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "[x](javascript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&amp;#106;avascript:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](java\nscript:alert(1))",
    "[x](java\u200bscript:alert(1))",
    "[x](&#x6A;ava&NewLine;script&colon;alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html,<b>hi</b>)",
    "[x](  <data:text/html,hi>)",
    "![chart](data:image/svg+xml;base64,PHN2Zz4=)",
    "[x](da&#x09;ta:text/html,hi)",
    "[x](file:///etc/passwd)",
    "[ref]: data:text/html,hi",
    "<data:text/html,hi>",
    '<a href="data:text/html,hi">x</a>',
    "<a href=data:text/html,hi>x</a>",
    '<a title="t" href="jav&#x0A;ascript:alert(1)">x</a>',
    "see data:text/html;base64,PHNjcmlwdD4=",
    "data:,alert(1)",
]

PROSE = [
    "Data: the table shows that warmer water dissolves more sugar.",
    "data: 3 trials, 2 plants each",
    "The DATA: mass/volume, for each sample",
    "The ratio is 3:4, so B.",
    "x < y > z, and a<b.",
    "H2O and CO2 are molecules; 10:30 is the time.",
    "<Step 1: Identify the options> <Step 2: compare them>",
    "<br> A line break written as a tag by a model.",
    "[A]: heat moves from warm to cold.",
    "[Note]: Data: the table",
    "See [the NASA page](https://www.nasa.gov/a:b) or [me](mailto:a@b.org).",
    "[up](#answer) and [next](questions/2.html)",
    "The answer is (B): heat. Thus, the answer is (B).",
    "$E = mc^2$ and $$a < b$$",
    "Written in JavaScript, the simulation shows ...",
]


@pytest.mark.parametrize("text", ACTIVE)
def test_active_content_is_refused_however_spelled(text):
    with pytest.raises(DataError, match="contains (HTML|a (java|vb)script: link|a link to a [a-z]+: address|a data: URL)"):
        validate.text(text, "comment", 2_000)


@pytest.mark.parametrize("text", PROSE)
def test_science_prose_is_kept(text):
    assert validate.text(text, "comment", 2_000) == text.strip()


def test_questions_drop_stray_control_characters_rather_than_refuse_them():
    # ARC-Challenge dev NYSEDREGENTS_2014_8_20 has U+0002 before its "+" signs.
    assert validate.text("AgNO3 \x02+ NaCl", "question stem", 2_000, drop_controls=True) == "AgNO3 + NaCl"
    with pytest.raises(DataError, match="control characters"):
        validate.text("AgNO3 \x02+ NaCl", "comment", 2_000)


def test_the_check_stays_fast_on_hostile_text():
    import time

    start = time.perf_counter()
    for hostile in ("<" * 8_000, "<a " * 2_600, "<a href=" * 1_000, "](" * 4_000, "&amp;" * 1_600):
        validate.active_content(hostile)
    assert time.perf_counter() - start < 1.0


@needs_shared
def test_no_real_question_or_rationale_is_refused():
    """Every stem, choice and rationale of the real data sets and teacher files passes."""
    refused = []
    for path in sorted(SHARED_DATA.glob("*/*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            row = json.loads(line)
            q = row.get("question")
            texts = [q["stem"], *(c["text"] for c in q["choices"])] if isinstance(q, dict) else []
            texts += [row["rationale"]] if isinstance(row.get("rationale"), str) else []
            refused += [(path.name, number, t[:80]) for t in texts if validate.active_content(t)]
    assert refused == []
