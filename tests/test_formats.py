"""The text formats of every stage, and answer extraction."""

import pytest

from scicot_core import formats
from scicot_core.errors import ConfigError
from scicot_core.questions import Choice, Question

Q = Question("q", "What melts ice?", (Choice("A", "cold"), Choice("B", "heat"), Choice("C", "salt water")), "B")


def test_stage_inputs():
    block = "Question: What melts ice?\nChoices:\n(A) cold\n(B) heat\n(C) salt water"
    assert formats.rationale_input(Q) == block + "\nRationale:"
    assert formats.answer_input(Q, "Heat  adds\nenergy.") == "Question: What melts ice?\nRationale: Heat adds energy.\nAnswer:"
    assert formats.cloze_input(Q) == "Question: What melts ice?\nAnswer:"
    assert formats.answer_target(Q.choices[1]) == " heat"
    assert formats.single_stage_target("Heat adds energy.", Q.choices[1]) == " Heat adds energy.\nAnswer: heat"


def test_stage_two_drops_the_answer_sentence_and_stage_one_learns_to_write_it():
    teacher = "Heat adds energy. The answer is heat. Thus, the answer is (b) heat. Some more."
    assert formats.answer_input(Q, teacher).endswith("Rationale: Heat adds energy. The answer is heat.\nAnswer:")
    assert formats.rationale_target(teacher) == " Heat adds energy. The answer is heat. Thus, the answer is (b) heat."
    assert formats.rationale_target("No conclusion here.") == " No conclusion here."
    assert formats.single_stage_target(teacher, Q.choices[1]) == " Heat adds energy. The answer is heat.\nAnswer: heat"


@pytest.mark.parametrize(
    "text, concluded, label",
    [
        ("Heat adds energy.", False, None),
        ("Heat adds energy. Thus, the answer is", False, None),
        ("Heat adds energy. Thus, the answer is (b", False, None),
        ("Heat adds energy. Thus, the answer is (b)", True, "B"),
        ("Cold slows it. So the answer is cold.", True, "A"),
        ("Cold slows it. So the answer is (Z) nothing", True, None),
        ("Heat adds energy.\nAnswer:", True, None),
    ],
)
def test_a_rationale_names_its_conclusion_before_it_stops(text, concluded, label):
    assert formats.rationale_concluded(text) is concluded
    assert formats.rationale_conclusion(text, Q) == label
    assert formats.rationale_body(text + " more") == formats.rationale_body(text) or not concluded


@pytest.mark.parametrize(
    "text, body",
    [
        ("Heat adds energy. Thus, the answer is (B).", "Heat adds energy."),
        ("Heat adds energy. therefore the answer is: ( 2 ) and more", "Heat adds energy."),
        ("Thus, the answer is (a) cold", ""),
        ("The answer is heat.", "The answer is heat."),
        ("Heat adds energy. So the answer is heat. Thus, the answer is (b)", "Heat adds energy."),
        ("Heat adds energy. Hence, the answer isn't cold.", "Heat adds energy. Hence, the answer isn't cold."),
        ("Thus heat (B) melts ice.", "Thus heat (B) melts ice."),
    ],
)
def test_rationale_body(text, body):
    assert formats.rationale_body(text) == body


@pytest.mark.parametrize(
    "text, done",
    [
        ("Heat adds energy.", False),
        ("Heat adds energy. Thus, the answer", False),
        ("Heat adds energy. Thus, the answer is", True),
        ("Heat adds energy. so\nthe answer is (b) heat", True),
        ("Heat adds energy.\nAnswer:", True),
    ],
)
def test_a_rationale_is_finished_once_nothing_more_would_be_kept(text, done):
    assert formats.rationale_finished(text) is done
    if done:  # whatever follows is cut, so stopping here changes nothing
        assert formats.rationale_body(text + " (a) heat. More text.") == formats.rationale_body(text)


def test_teacher_prompts():
    assert "The correct answer is (B) heat." in formats.teacher_prompt(Q, "rationalize")
    assert "correct answer" not in formats.teacher_prompt(Q, "cot")
    with pytest.raises(ConfigError, match="no answer key"):
        formats.teacher_prompt(Question("t", "s", Q.choices), "rationalize")
    with pytest.raises(ConfigError, match="unknown teacher mode"):
        formats.teacher_prompt(Q, "guess")
    assert formats.teacher_messages(Q, "cot")[0]["role"] == "system"


@pytest.mark.parametrize(
    "text, label",
    [
        ("Heat adds energy. Thus, the answer is (B).", "B"),
        ("thus the answer is (b) heat", "B"),
        ("The answer is: (C)", "C"),
        ("Answer: A", "A"),
        ("(A) is wrong, (C) too, so (B)", "B"),
        ("The answer is heat.", "B"),
        ("No idea at all.", None),
        ("the answer is (Z)", None),
    ],
)
def test_extract_answer(text, label):
    assert formats.extract_answer(text, Q) == label


def test_extract_answer_digit_labels():
    q = Question("d", "s", (Choice("1", "x"), Choice("2", "y")), "2")
    assert formats.extract_answer("Thus, the answer is (2).", q) == "2"


def test_clean_rationale_cuts_a_generated_answer_line():
    assert formats.clean_rationale(" Heat\n adds energy.\nAnswer: (B) heat") == "Heat adds energy."


def test_clean_rationale_drops_control_characters():
    assert formats.clean_rationale("a\x00b\x07 c\u200b") == "ab c"


@pytest.mark.parametrize(
    "text, body",
    [
        ("Algae are producers. Algae are producers. Algae are producers.", "Algae are producers."),
        ("Heat adds energy. Thus, ice melts. thus,  ice MELTS. Thus, the answer is (b).", "Heat adds energy. Thus, ice melts."),
        ("Ice melts. Heat flows. Ice melts. Heat flows. Ice melts.", "Ice melts. Heat flows."),
        ("A is hot. B is cold. C is wet. A is hot. B is cold. C is wet.", "A is hot. B is cold. C is wet."),
        # a sentence repeated further on is a formula, not a loop; nor are list numbers
        ("A: ice. This is wrong. B: heat. This is wrong.", "A: ice. This is wrong. B: heat. This is wrong."),
        ("Steps: 2. 2. Heat flows.", "Steps: 2. 2. Heat flows."),
        ("It is 9. It is 9.5 g.", "It is 9. It is 9.5 g."),
    ],
)
def test_a_rationale_that_loops_is_cut_before_the_loop(text, body):
    assert formats.rationale_body(text) == body


@pytest.mark.parametrize(
    "text, done",
    [
        ("Algae are producers. Algae are producers. Thus", True),
        ("Algae are producers. Algae are producers.", False),  # the last sentence may still grow ("... producers.5")
        ("Ice melts. Heat flows. Ice melts. Heat flows. More", True),
        ("A: ice. This is wrong. B: heat. This is wrong. C", False),
    ],
)
def test_a_looping_rationale_is_finished_and_stopping_changes_nothing(text, done):
    assert formats.rationale_finished(text) is done
    assert formats.rationale_concluded(text) is done
    if done:
        assert formats.rationale_body(text + " more. Thus, the answer is (b).") == formats.rationale_body(text)
        assert formats.rationale_conclusion(text, Q) is None


def test_the_stage_1_target_leaves_a_teachers_loop_out():
    looping = "Giraffes give birth. Giraffes give birth. Thus, the answer is (b) heat. More."
    assert formats.rationale_target(looping) == " Giraffes give birth. Thus, the answer is (b) heat."
    assert formats.rationale_target("Giraffes give birth. Giraffes give birth.") == " Giraffes give birth."


def test_first_sentences_keep_whole_sentences_of_the_cleaned_text():
    text = "Ice melts at 0 C.  Heat is 9.5 J here!\nSo it melts? Yes."
    assert formats.first_sentences(text, 1) == "Ice melts at 0 C."
    assert formats.first_sentences(text, 2) == "Ice melts at 0 C. Heat is 9.5 J here!"
    assert (
        formats.first_sentences(text, 9) == formats.first_sentences(text, None) == "Ice melts at 0 C. Heat is 9.5 J here! So it melts? Yes."
    )


def test_past_sentences_counts_the_body_and_can_wait_to_see_an_answer_sentence():
    assert not formats.past_sentences("Ice is cold.", 1) and formats.past_sentences("Ice is cold. Heat", 1)
    assert not formats.past_sentences("Ice is cold. Thus, the answer is (A)", 1)  # the answer sentence is not counted
    assert not formats.past_sentences("Ice is cold. Thus, the", 1, formats.ANSWER_OPENING_WORDS)  # not yet known
    assert formats.past_sentences("Ice is cold. Heat melts ice in spring", 1, formats.ANSWER_OPENING_WORDS)
    assert not formats.past_sentences("", 1) and not formats.past_sentences("It weighs 9.5 g", 1)
