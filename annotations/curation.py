"""Curation: reviewers accept, reject or edit rationales, and what export reads back. Mixed
into `Store` (as identity is); every write goes through the Store's own transaction."""

from __future__ import annotations

from scicot_core.errors import DataError
from scicot_core.questions import Question

from . import validate
from .criteria import DECISIONS, MAX_COMMENT_CHARS


class CurationVerbs:
    """The curation verbs of `Store`."""

    def curate(
        self,
        rationale_id_: str,
        decision: str,
        reviewer: str,
        reason: str = "",
        edited_text: str | None = None,
        answer_key: str | None = None,
    ) -> int:
        """Accept, reject or edit a rationale (reviewers only); the latest decision counts. Only a
        rationale whose question has an answer key can be accepted or edited (training needs the
        gold answer): `answer_key` gives a question without one its key, in the same transaction."""
        from .store import now_utc  # the store imports this module: its clock is looked up when curating

        reviewer = self.require_reviewer(self._known_rater(reviewer))
        decision = validate.choice(decision, DECISIONS, "decision")
        reason = validate.text(reason or "", "reason", MAX_COMMENT_CHARS, allow_empty=True)
        question = self.question(self.rationale(rationale_id_)["question_id"])
        if (decision == "edit") != (edited_text is not None):
            raise DataError("give the edited text with decision 'edit' (and only then).")
        key = _new_answer_key(question, answer_key) if decision != "reject" else None
        edit = self._edit_row(rationale_id_, edited_text, reviewer) if decision == "edit" else None
        with self._write() as db:  # the key, the edit and the decision together, or none of them
            if key:
                db["questions"].update(question.id, {"answer_key": key})
            if edit:
                db["rationales"].insert(edit, ignore=True)
            edited_id = edit["id"] if edit else None
            row = {
                "rationale_id": rationale_id_,
                "decision": decision,
                "reviewer": reviewer,
                "reason": reason,
                "edited_id": edited_id,
                "created_utc": now_utc(),
            }
            return db["curation"].insert(row).last_pk

    def curation_rows(self) -> list[dict]:
        """Every rationale with its question, its latest curation decision and its submitted
        ratings: the input of the pure export function."""
        decisions = {}
        for row in self.db.query("select * from curation order by id"):
            decisions[row["rationale_id"]] = row
        ratings: dict[str, list[dict]] = {}
        for g in self.ratings("submitted"):
            ratings.setdefault(g["rationale_id"], []).append(g)
        questions = self._questions_by_id()
        out = []
        for r in self.db.query("select * from rationales order by question_id, created_utc, id"):
            out.append(
                {
                    "rationale": r,
                    "question": questions[r["question_id"]],
                    "decision": decisions.get(r["id"]),
                    "ratings": ratings.get(r["id"], []),
                }
            )
        return out


def _new_answer_key(question: Question, given: str | None) -> str | None:
    """The key to store for a question being accepted: None when it has one already (a
    different one given is refused), the given label when it has none, else an error."""
    given = (given or "").strip().upper() or None
    if question.answer_key is not None:
        if given not in (None, question.answer_key):
            raise DataError(f"question {question.id!r} already has the answer key {question.answer_key}; leave the answer key empty.")
        return None
    if given is None:
        raise DataError(
            f"question {question.id!r} has no answer key, which training needs: give the correct label "
            f"({', '.join(question.labels)}) to accept it, or reject it."
        )
    if given not in question.labels:
        raise DataError(f"answer key {given!r} is not a choice of question {question.id!r}; give one of {', '.join(question.labels)}.")
    return given
