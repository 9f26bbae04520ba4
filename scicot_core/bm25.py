"""BM25 over the memory's facts, held in numpy arrays so a query takes about a millisecond.

FTS5 ranks the same way but scores every fact that holds any query word, about 30 ms a query on
the whole memory. This index gives FTS5's own scores: its tokens come from FTS5's Porter
tokenizer (each distinct word stemmed once, in an in-memory FTS5 table), and its formula is
FTS5's `bm25()` (k1 = 1.2, b = 0.75, idf floored at 1e-6), so only the order of tied facts may
differ. It is built from the facts table when first searched, in about 3 s for 146,000 facts.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

K1, B = 1.2, 0.75  # FTS5's bm25() defaults
TOKENIZER = "porter unicode61"  # the memory's FTS5 tokenizer, and so this index's
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"[^\W_]+")  # unicode61's token characters: letters and numbers


def words(text: str) -> list[str]:
    """The words unicode61 finds in `text`: lower case, diacritics taken off."""
    text = text.lower()
    if text.isascii():
        return _ASCII_WORD.findall(text)
    plain = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return _WORD.findall(plain)


class Stemmer:
    """Words to the terms FTS5 indexes them as, asked of FTS5 itself and remembered."""

    def __init__(self, tokenizer: str = TOKENIZER):
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute(f"create virtual table words using fts5(w, tokenize='{tokenizer}')")
        self.db.execute("create virtual table v using fts5vocab(words, 'instance')")
        self.known: dict[str, tuple[str, ...]] = {}
        self.lock = threading.Lock()  # the app searches from several threads

    def __call__(self, found: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The stems of every word seen so far, those of `found` among them."""
        new = list(dict.fromkeys(w for w in found if w not in self.known))
        if new:
            with self.lock, self.db:
                self.db.executemany("insert into words(rowid, w) values (?, ?)", enumerate(new))
                stems: dict[int, list[str]] = {}
                for term, row in self.db.execute("select term, doc from v order by doc, offset"):
                    stems.setdefault(row, []).append(term)
                self.db.execute("delete from words")
                self.known.update((w, tuple(stems.get(i, ()))) for i, w in enumerate(new))
        return self.known


class Index:
    """BM25 scores of every (term, fact) pair, by term: `search` adds up a query's rows."""

    def __init__(self, rows: Sequence[tuple[int, str]], stemmer: Stemmer | None = None):
        """`rows`: every (fact id, text) of the memory."""
        rows = sorted(rows)
        self.stemmer = stemmer or Stemmer()
        self.ids = np.array([i for i, _ in rows], dtype=np.int64)
        found = [words(text) for _, text in rows]
        vocab = {w: i for i, w in enumerate(set(itertools.chain.from_iterable(found)))}  # each word a number
        stems = self.stemmer(vocab)
        self.terms: dict[str, int] = {}  # each stem a number; a word has one stem, or none, or (rarely) several
        word_terms = [[self.terms.setdefault(t, len(self.terms)) for t in stems[w]] for w in vocab]
        per_word = np.array([len(ts) for ts in word_terms], dtype=np.int64)
        first = np.cumsum(per_word) - per_word
        flat = np.fromiter(itertools.chain.from_iterable(word_terms), dtype=np.int64, count=int(per_word.sum()))
        token = np.fromiter(map(vocab.__getitem__, itertools.chain.from_iterable(found)), dtype=np.int64)
        fact = np.repeat(np.arange(len(rows), dtype=np.int64), np.fromiter(map(len, found), dtype=np.int64, count=len(rows)))
        counts = per_word[token]
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        term, fact = flat[np.repeat(first[token], counts) + within], np.repeat(fact, counts)
        self._weigh(term, fact, len(rows))

    def _weigh(self, term: np.ndarray, fact: np.ndarray, n: int) -> None:
        """Each (term, fact) pair's BM25 weight from the term of every token and its fact."""
        lengths = np.bincount(fact, minlength=n)  # a fact's length counts every token, stopwords too
        pairs, tf = np.unique(term * max(n, 1) + fact, return_counts=True)
        term, self.fact = pairs // max(n, 1), (pairs % max(n, 1)).astype(np.int32)
        self.starts = np.searchsorted(term, np.arange(len(self.terms) + 1))
        df = np.diff(self.starts)
        idf = np.log((n - df + 0.5) / (df + 0.5))
        idf[idf <= 0] = 1e-6
        norm = K1 * (1 - B + B * lengths[self.fact] / max(lengths.mean() if n else 1.0, 1e-9))
        self.weight = idf[term] * tf * (K1 + 1) / (tf + norm)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query_words: Sequence[str], k: int, leave_out: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The `k` best (fact id, score) for the words, as FTS5 scores `"w1" OR "w2" ...`: a word
        counts once per time it is given, and a fact in `leave_out` is never returned."""
        if k <= 0:
            return []
        stems = self.stemmer(query_words)
        scores = np.zeros(len(self.ids))
        for w in query_words:
            for t in stems[w]:
                if (row := self.terms.get(t)) is not None:
                    a, b = self.starts[row], self.starts[row + 1]
                    scores[self.fact[a:b]] += self.weight[a:b]
        gone = np.fromiter(leave_out, dtype=np.int64)
        if len(gone) and len(self.ids):
            at = np.searchsorted(self.ids, gone).clip(max=len(self.ids) - 1)
            scores[at[self.ids[at] == gone]] = 0
        hits = np.flatnonzero(scores)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.lexsort((self.ids[hits], -scores[hits]))]
        return [(int(self.ids[i]), float(scores[i])) for i in hits]
