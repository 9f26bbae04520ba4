"""The student's memory: true facts from the teachers and the raters, retrieved by BM25.

Facts come from training-split rationale files (each sentence before the answer sentence;
EntailmentBank's own facts list), from the bundled sample set where no data directory is
given, and from rationales a reviewer accepted or wrote in the annotation store. Sentences that
only talk about the question's options ("Option B is wrong ...", "D: ...") or lean on the one
before ("It helps ...") are dropped, and a fact found
in several rationales is kept once, with every place it came from (its provenance: teacher or
human, file, question, licence).

The memory is one SQLite file beside the store, indexed with FTS5 (the Porter stemmer); searches
rank by FTS5's BM25 through a copy of its index in numpy (`bm25`), 30 times faster. It never
holds a dev or test rationale: the builder refuses a dev or test file, row or store question and
writes nothing. A search may leave out the facts of one question (a training question must not
retrieve the rationale it is learning to write).
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import bm25, tempfiles
from .distillation_set import rationale_files
from .errors import ConfigError
from .formats import rationale_body
from .questions import DATASETS, SPLITS, Question, read_jsonl, sample_items

MEMORY_FILE = "memory.db"
MAX_FACTS = 50  # the most facts one question may read
MODES = ("joint", "per-choice")  # how a question is put to the memory (Memory.for_question)
SCHEMA = 1
FACTS_VERSION = 3  # how facts are cut from rationales (facts_of); a memory of another version is built again
MIN_WORDS = 4  # shorter sentences ("That is wrong.") carry no fact
# Sentences about the question's options, not about the world: "(b) ...", "D: ...", "... (C: rare) ...", "Option B".
_ABOUT_OPTIONS = re.compile(
    r"\(\s*[a-i1-9]\s*\)|^[A-I1-9]\s*[:.)-]\s|(?-i:\b[A-E]:\s)|\b(?:options?|choices?|answers?|correct|incorrect)\b", re.IGNORECASE
)
# Sentences that lean on the one before ("It helps ...", "This means ..."): no fact on their own.
_LEANING = re.compile(r"^(?:it|its|this|that|these|those|they|their|them|he|she|so|thus|therefore|hence|also)\b", re.IGNORECASE)
# A list's marks before a sentence ("- ", "* ", "2. ", "Step 3: ", "**"): cut, the sentence kept.
_LIST_MARK = re.compile(r"^(?:\s*(?:[-*\u2022>#]+|\d{1,2}[.)]|step\s*\d{1,2}\s*[:.)-]?)\s+)+|\*\*", re.IGNORECASE)
# Sentences about the reasoning, not the world: "The question asks ...", "Consider the ...",
# "To determine ..., we need ...", "X is not directly related to Y" (an option set aside).
_ABOUT_REASONING = re.compile(
    r"\b(?:questions?|let's|let us|scenario|statement|mentioned|listed)\b"
    r"|\bwe (?:need|must|should|can|look|consider|compare|examine|multiply|divide|know|see that|have to)\b"
    r"|^(?:first,?\s+|next,?\s+|finally,?\s+)?(?:analy[sz]e|analy[sz]ing|identify|determine|evaluate|consider|considering"
    r"|understand|recall|look|compare|recogni[sz]e|examine|think|review|assess|check|note)\b"
    r"|^to (?:determine|analy[sz]e|answer|find|decide|identify|evaluate|solve|understand|figure)\b"
    r"|\bnot directly\b|\bnot (?:really |necessarily )?(?:related|relevant|associated|connected|applicable)\b|\b(?:irrelevant|unrelated)\b",
    re.IGNORECASE,
)
# Sentences end at a stop and a space, or at a stop glued to the next sentence or list mark
# ("... reliable.- Low quality ...", "... blood.Therefore ...").
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z0-9)][.!?])(?=-\s|[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")
# Words that match nearly every fact: left out of queries so BM25 weighs the rest.
STOPWORDS = frozenset(
    """a about above after all also am an and any are as at be because been being below between both but by can could
    did do does doing down during each few for from further had has have having he her here hers him his how i if in
    into is it its itself just me more most my no nor not now of off on once only or other our out over own same she
    should so some such than that the their them then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your following best most likely""".split()
)
# Where each rationale file's facts come from, and under what terms (../shared/data/README.md).
LICENCES = {
    "entailmentbank": ("human", "EntailmentBank (Dalvi et al. 2021), Apache-2.0 / CC BY"),
    "flan_t5": ("teacher", "Flan-T5 rationales of TinyLLM's public data, Apache-2.0"),
    "gpt4o": ("teacher", "GPT-4o rationales of EIT-NLP/Distilling-CoT-Reasoning, Apache-2.0; OpenAI's terms for outputs"),
    "gemini15flash": ("teacher", "Gemini-1.5-Flash rationales of EIT-NLP/Distilling-CoT-Reasoning, Apache-2.0; Google's terms for outputs"),
}
SAMPLE_LICENCE = "SciCoT Studio's own sample set, Apache-2.0"
STORE_LICENCE = "written or accepted in this annotation store"
TEACHER_NAMES = {"entailmentbank": "EntailmentBank", "flan_t5": "Flan-T5", "gpt4o": "GPT-4o", "gemini15flash": "Gemini-1.5-Flash"}
DATASET_NAMES = {"arc_easy": "ARC-Easy", "arc_challenge": "ARC-Challenge", "openbookqa": "OpenBookQA"}


@dataclass(frozen=True)
class Source:
    """Where one fact was found: `kind` is teacher, human or rated (a store rationale a reviewer
    accepted, or an edit)."""

    kind: str
    teacher: str
    file: str
    question_id: str
    dataset: str
    licence: str
    rater: str = ""

    def label(self) -> str:
        """How the app names it: "GPT-4o rationale for an OpenBookQA train question"."""
        if self.kind == "rated":
            return f"rated by {self.rater}" if self.rater else "accepted in the store"
        if self.teacher == "sample":
            topic = (self.dataset.partition("/")[2] or "sample").replace("_", " ")
            return f"the sample set's rationale for {'an' if topic[:1] in 'aeiou' else 'a'} {topic} question"
        where = DATASET_NAMES.get(self.dataset, self.dataset)
        if self.kind == "human":
            return f"{TEACHER_NAMES.get(self.teacher, self.teacher)} (human) for an {where} train question"
        article = "an" if where[:1] in "AEIOU" else "a"
        return f"{TEACHER_NAMES.get(self.teacher, self.teacher)} rationale for {article} {where} train question"


@dataclass(frozen=True)
class Fact:
    """A retrieved fact: its text, its BM25 score (higher is better) and where it came from."""

    id: int
    text: str
    score: float
    sources: tuple[Source, ...] = field(default=(), compare=False)

    @property
    def source(self) -> str:
        """Where it was first found, as the app names it ("" before `with_sources`)."""
        return self.sources[0].label() if self.sources else ""

    def shown(self) -> dict:
        return {"text": self.text, "source": self.source}


def as_rationale(facts: Sequence[Fact]) -> str:
    """Facts as stage 2 reads them in place of a rationale: one text."""
    return " ".join(f.text for f in facts)


def key(text: str) -> str:
    """What two facts share when they say the same thing: lower-case words, in order."""
    return " ".join(_WORD.findall(text.lower()))


def sentence(text: str) -> str:
    """A fact as a sentence: first letter up, one closing stop."""
    text = " ".join(text.split()).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def facts_of(row: dict) -> list[str]:
    """The facts of one rationale row: EntailmentBank's own facts list when it has one, else the
    sentences before its answer sentence (list marks cut), without those about the options or
    about the reasoning itself, those that lean on the sentence before, and those too short."""
    if isinstance(row.get("facts"), list) and all(isinstance(f, str) for f in row["facts"]):
        candidates = row["facts"]
    else:
        text = row.get("rationale")
        candidates = _SENTENCE_END.split(rationale_body(text)) if isinstance(text, str) else []
    out = []
    for c in candidates:
        c = sentence(_LIST_MARK.sub("", c))
        if len(_WORD.findall(c.lower())) >= MIN_WORDS and not any(p.search(c) for p in (_ABOUT_OPTIONS, _ABOUT_REASONING, _LEANING)):
            out.append(c)
    return out


def file_parts(path: Path) -> tuple[str, str, str]:
    """(teacher family, dataset, split) from a rationale file's name, `<teacher>_<dataset>_<split>.jsonl`."""
    stem = path.stem
    split = next((s for s in SPLITS if stem.endswith("_" + s)), "")
    stem = stem[: -len(split) - 1] if split else stem
    dataset = next((d for d in DATASETS if stem.endswith("_" + d)), "")
    teacher = stem[: -len(dataset) - 1] if dataset else stem
    family = next((f for f in LICENCES if teacher == f or teacher.startswith(f + "-")), teacher)
    return family, dataset, split


def _file_rows(path: Path) -> Iterator[tuple[str, Source]]:
    """(fact, source) of every row of one training-split rationale file; a dev or test file, or
    a row that says another split, is refused."""
    check_file(path)
    family, dataset, _ = file_parts(path)
    kind, licence = LICENCES.get(family, ("teacher", f"{path.name}: see the data directory's README"))
    for number, row in read_jsonl(path):
        if row.get("split", "train") != "train":
            raise ConfigError(f"{path.name} line {number}: a {row['split']!r} row; the memory takes training-split rationales only.")
        for text in facts_of(row):
            yield text, Source(kind, family, path.name, str(row.get("id", "")), row.get("dataset") or dataset, licence)


def sample_rows() -> Iterator[tuple[str, Source]]:
    """The bundled sample set's reference rationales: the memory where no data directory is."""
    for question, text in sample_items():
        for fact in facts_of({"rationale": text}):
            yield fact, Source("teacher", "sample", "sample_questions.jsonl", question.id, question.source, SAMPLE_LICENCE)


def held_out_ids(data_dir: Path | None) -> set[str]:
    """The ids of every dev and test question of a data directory's datasets."""
    ids: set[str] = set()
    for dataset in DATASETS if data_dir else ():
        for split in ("dev", "test"):
            path = Path(data_dir) / dataset / f"{split}.jsonl"
            if path.is_file():
                ids |= {str(row.get("id")) for _, row in read_jsonl(path)}
    return ids


def held_out(row: dict, held_out_ids: set[str]) -> bool:
    """Whether an exported store row is for a dev or test question (by its split or its id)."""
    return str(row["id"]) in held_out_ids or (row.get("dataset") or "").rpartition("/")[2] in ("dev", "test")


def store_rows(export: Sequence[dict], held_out_ids: set[str], skip_held_out: bool = False) -> Iterator[tuple[str, Source]]:
    """Facts of the store's accepted rationales and edits (`annotations.export.export_rows`
    output, whose `dataset` is the question's `dataset/split`); one for a dev or test question
    (by its split, or its id among `held_out_ids`) is refused, or left out with `skip_held_out`."""
    rows = [row for row in export if not (skip_held_out and held_out(row, held_out_ids))]
    for row in rows:
        split = (row.get("dataset") or "").rpartition("/")[2]
        if held_out(row, held_out_ids):
            raise ConfigError(
                f"the store's accepted rationale {row.get('rationale_id')} is for the {split if split in ('dev', 'test') else 'held-out'} "
                f"question {row['id']}; the memory takes training questions only (reject it, or build with --no-store)."
            )
    for row in rows:
        rater = row.get("reviewer") or ", ".join(row.get("raters") or [])
        dataset = (row.get("dataset") or "").partition("/")[0]
        for text in facts_of({"rationale": row["rationale"]}):
            file = f"store:{row.get('rationale_id')}"  # one rationale's facts, so that a later rejection takes them out
            yield text, Source("rated", row.get("teacher_model") or "", file, str(row["id"]), dataset, STORE_LICENCE, rater)


# -- the file -------------------------------------------------------------------------------------

_CREATE = f"""
create table meta (name text primary key, value text not null);
create table facts (id integer primary key, text text not null, key text not null unique);
create table sources (
    fact_id integer not null references facts(id), kind text not null, teacher text not null, file text not null,
    question_id text not null, dataset text not null, licence text not null, rater text not null default '',
    unique (fact_id, file, question_id)
);
create index sources_question on sources(question_id);
create virtual table facts_fts using fts5(text, content='facts', content_rowid='id', tokenize='{bm25.TOKENIZER}');
create trigger facts_ai after insert on facts begin insert into facts_fts(rowid, text) values (new.id, new.text); end;
create trigger facts_ad after delete on facts begin
    insert into facts_fts(facts_fts, rowid, text) values ('delete', old.id, old.text);
end;
"""


def build(path: Path, rows: Iterable[tuple[str, Source]], about: dict | None = None) -> dict:
    """Write a new memory at `path` from (fact, source) rows: into a temporary file first, so
    a refusal or a failure midway leaves what was at `path` as it was. Returns its stats."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file path such as {path / MEMORY_FILE}.")
    with tempfiles.atomic(path) as tmp:
        db = sqlite3.connect(tmp)
        try:
            db.executescript(_CREATE)
            _add(db, rows)
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            meta = {"schema": SCHEMA, "facts_version": FACTS_VERSION, "built_utc": now} | (about or {})
            db.executemany("insert into meta values (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            db.execute("insert into facts_fts(facts_fts) values ('optimize')")  # one index segment: searches 2-3x faster
            db.commit()  # a rollback journal, not WAL: a rebuilt file is renamed over this one while readers may hold it
        finally:
            db.close()
    built = Memory(path)
    try:
        return built.stats()
    finally:
        built.close()


def _add(db: sqlite3.Connection, rows: Iterable[tuple[str, Source]]) -> int:
    """Insert facts (a known one gains the new source); returns how many facts are new."""
    new = 0
    for text, s in rows:
        k = key(text)
        found = db.execute("select id from facts where key = ?", (k,)).fetchone()
        if found is None:
            fact_id = db.execute("insert into facts (text, key) values (?, ?)", (text, k)).lastrowid
            new += 1
        else:
            fact_id = found[0]
        db.execute(
            "insert or ignore into sources values (?, ?, ?, ?, ?, ?, ?, ?)",
            (fact_id, s.kind, s.teacher, s.file, s.question_id, s.dataset, s.licence, s.rater),
        )
    return new


def query_terms(text: str) -> list[str]:
    """The words of a query that BM25 should weigh: lower-case, no stopwords, each once."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1))


def joint_query(question: Question) -> str:
    """A question put to the memory at once: its stem and every choice."""
    return " ".join([question.stem, *(c.text for c in question.choices)])


class Memory:
    """A built memory file, opened read-mostly (searches; `add` for curated rationales)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no memory there; build one with `scicot memory build`.")
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            tables = {r[0] for r in self.db.execute("select name from sqlite_master where type = 'table'")}
        except sqlite3.DatabaseError:
            tables = set()
        if not {"facts", "sources", "meta", "facts_fts"} <= tables:
            self.db.close()
            raise ConfigError(f"{self.path} is not a memory file; build one with `scicot memory build --out {self.path}`.")
        self._stemmer, self._lock = bm25.Stemmer(), threading.Lock()
        self._index: bm25.Index | None = None
        self._version: int | None = None

    def close(self) -> None:
        self.db.close()

    def search(self, query: str, k: int = 5, exclude_question: str | None = None) -> list[Fact]:
        """The `k` facts BM25 ranks first for `query`, leaving out any fact found in a rationale
        of question `exclude_question`."""
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        own = "select fact_id from sources where question_id = ?"
        leave_out = [r[0] for r in self.db.execute(own, (exclude_question,))] if exclude_question is not None else []
        ranked = self._bm25().search(terms, k, leave_out)
        texts = dict(self.db.execute(f"select id, text from facts where id in ({','.join('?' * len(ranked))})", [i for i, _ in ranked]))
        return [Fact(i, texts[i], score) for i, score in ranked]

    def fts5_search(self, query: str, k: int = 5, exclude_question: str | None = None) -> list[Fact]:
        """`search` as FTS5 itself ranks it, about 30 times slower: the reference the index's
        scores are tested and timed against."""
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        sql = "select f.id, f.text, -x.rank from facts_fts x join facts f on f.id = x.rowid where facts_fts match ?"
        params: list = [" OR ".join(f'"{t}"' for t in terms)]
        if exclude_question is not None:
            sql += " and x.rowid not in (select fact_id from sources where question_id = ?)"
            params.append(exclude_question)
        return [Fact(*row) for row in self.db.execute(sql + " order by x.rank limit ?", [*params, k])]

    def warm(self) -> None:
        """Build the search index now (a few seconds for the whole memory), not at the first search."""
        self._bm25()

    def _bm25(self) -> bm25.Index:
        """The in-memory index of the facts as they are now: built on first use, and again
        after this connection or another one changed the file."""
        with self._lock:
            version = self.db.execute("pragma data_version").fetchone()[0]  # moves when another connection commits
            if self._index is None or version != self._version:
                self._index = bm25.Index(self.db.execute("select id, text from facts").fetchall(), self._stemmer)
                self._version = version
            return self._index

    def for_question(self, question: Question, k: int = 5, mode: str = "joint", exclude_own: bool = False) -> list[Fact]:
        """Facts for a question: `joint` queries its stem and every choice at once;
        `per-choice` queries the stem with each choice and takes the choices' best in turn."""
        exclude = question.id if exclude_own else None
        if mode == "joint":
            return self.search(joint_query(question), k, exclude)
        if mode not in MODES:
            raise ConfigError(f"retrieval mode {mode!r}; give joint or per-choice.")
        lists = [self.search(f"{question.stem} {c.text}", k, exclude) for c in question.choices]
        out: dict[int, Fact] = {}
        for rank in range(k):
            for hits in lists:
                if rank < len(hits) and hits[rank].id not in out:
                    out[hits[rank].id] = hits[rank]
        return list(out.values())[:k]

    def sources(self, fact_ids: Sequence[int]) -> dict[int, tuple[Source, ...]]:
        """Every source of each fact."""
        found: dict[int, list[Source]] = {i: [] for i in fact_ids}
        marks = ",".join("?" * len(fact_ids))
        for row in self.db.execute(f"select * from sources where fact_id in ({marks}) order by rowid", list(fact_ids)):
            found[row[0]].append(Source(*row[1:]))
        return {i: tuple(s) for i, s in found.items()}

    def with_sources(self, facts: Sequence[Fact]) -> list[Fact]:
        found = self.sources([f.id for f in facts]) if facts else {}
        return [Fact(f.id, f.text, f.score, found[f.id]) for f in facts]

    def texts_from(self, files: Iterable[str]) -> list[str]:
        """The facts the sources `files` brought (`store:<rationale id>`), as text."""
        files = list(files)
        marks = ",".join("?" * len(files))
        sql = f"select distinct f.text from facts f join sources s on s.fact_id = f.id where s.file in ({marks}) order by f.id"
        return [r[0] for r in self.db.execute(sql, files)] if files else []

    def add(self, rows: Iterable[tuple[str, Source]]) -> int:
        """Add facts in one transaction (all or none); returns how many are new."""
        rows = list(rows)  # a refusal while reading them comes before anything is written
        try:
            with self.db:
                return _add(self.db, rows)
        finally:
            self._index = None  # this connection's own commits leave data_version as it was

    def replace(self, files: Iterable[str], rows: Iterable[tuple[str, Source]]) -> tuple[int, int]:
        """In one transaction, take out what the sources `files` brought (`store:<rationale id>`:
        their places, and the facts no other place holds), then add `rows`; returns (facts
        added, facts gone)."""
        rows = list(rows)
        try:
            with self.db:
                gone = sum(self._remove(self.db, file) for file in files)
                return _add(self.db, rows), gone
        finally:
            self._index = None

    @staticmethod
    def _remove(db: sqlite3.Connection, file: str) -> int:
        ids = [r[0] for r in db.execute("select distinct fact_id from sources where file = ?", (file,))]
        db.execute("delete from sources where file = ?", (file,))
        marks = ",".join("?" * len(ids))
        return db.execute(f"delete from facts where id in ({marks}) and id not in (select fact_id from sources)", ids).rowcount

    def stats(self) -> dict:
        """Facts, sources by kind and by file, and what the builder recorded."""
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        meta = {name: json.loads(value) for name, value in self.db.execute("select name, value from meta")}
        return {
            "facts": one("select count(*) from facts"),
            "sources": one("select count(*) from sources"),
            "questions": one("select count(distinct question_id) from sources"),
            "by_kind": dict(self.db.execute("select kind, count(*) from sources group by kind order by kind").fetchall()),
            "by_file": dict(self.db.execute("select file, count(*) from sources group by file order by file").fetchall()),
            "meta": meta,
        }


def build_rows(data_dir: Path | None, patterns: Sequence[str] = ("*",), files: Sequence[Path] = ()) -> tuple[list[Path], Iterator]:
    """The rationale files a build reads (the data directory's training-split files matching
    `patterns`, and `files`, each checked first) and their (fact, source) rows; the sample
    set's rows when there is neither a data directory nor a file."""
    for f in files:
        check_file(f)
    if data_dir is None and not files:
        return [], sample_rows()
    chosen = (rationale_files(data_dir, patterns) if data_dir is not None else []) + [Path(f) for f in files]
    return chosen, _unseen((row for f in chosen for row in _file_rows(f)), held_out_ids(data_dir))


def _unseen(rows: Iterable[tuple[str, Source]], held_out: set[str]) -> Iterator[tuple[str, Source]]:
    """Rows whose question is no dev or test question (`held_out`); one that is stops the build."""
    for text, source in rows:
        if source.question_id in held_out:
            raise ConfigError(
                f"{source.file}: question {source.question_id} is a dev or test question of the data directory; "
                "the memory takes training questions only."
            )
        yield text, source


def check_file(path: Path) -> None:
    """Refuses a rationale file the memory must not read, before anything is built."""
    split = file_parts(Path(path))[2]
    if split != "train":
        raise ConfigError(
            f"{Path(path).name} is {'a ' + split if split else 'not a training-split'} rationale file (by its name, "
            "<teacher>_<dataset>_<split>.jsonl); the memory takes training-split rationales only (dev and test stay unseen)."
        )


_ENSURE = threading.Lock()


def ensure(path: Path, data_dir: Path | None, extra: Callable[[], Iterable[tuple[str, Source]]] | None = None) -> Path:
    """The memory at `path`, built first where there is none (or one whose facts were cut by
    another version of `facts_of`): from the data directory's training-split rationale files
    when it has some, else from the sample set, and `extra()` (the store's accepted rationales)."""
    path = Path(path)
    with _ENSURE:
        if not path.is_file() or _version(path) != FACTS_VERSION:
            folder = Path(data_dir) / "rationales" if data_dir else None
            has_files = folder is not None and any(folder.glob("*_train.jsonl"))
            rows = build_rows(data_dir if has_files else None)[1]
            build(path, itertools.chain(rows, extra() if extra else ()), {"built_by": "first use"})
    return path


def _version(path: Path) -> int | None:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)  # read only; any character in the path
        try:
            found = db.execute("select value from meta where name = 'facts_version'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None
    return json.loads(found[0]) if found else None
