"""Export: curated rationales out as the distillation set. `export_rows` is a pure function from
store rows to flat rows with provenance; the writers put them in JSONL (the schema training
reads), parquet or a `datasets.Dataset`, always through a temporary file and a rename."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from scicot_core import tempfiles
from scicot_core.distillation_set import DistillRecord, write_jsonl_atomic
from scicot_core.errors import ConfigError

from . import criteria

FORMATS = ("jsonl", "parquet", "dataset")
DATASET_MARKERS = ("dataset_info.json", "state.json")  # what `Dataset.save_to_disk` writes


@dataclass(frozen=True)
class ExportFilter:
    """Which curated rationales go out."""

    accepted_only: bool = True
    min_mean: float | None = None
    min_raters: int = 0


def export_rows(store_rows: list[dict], flt: ExportFilter = ExportFilter()) -> list[dict]:
    """Flat distillation-set rows with provenance, from `Store.curation_rows()` (only submitted
    ratings are in those rows). A reviewer's edit goes out in place of the rationale it edits,
    carrying that rationale's ratings when it has none of its own."""
    by_id = {row["rationale"]["id"]: row for row in store_rows}
    out = []
    for row in store_rows:
        r, decision = row["rationale"], row["decision"]
        edited_from = by_id.get(r["edits_id"]) if r["edits_id"] else None
        verdict = decision["decision"] if decision else None
        if verdict in ("reject", "edit"):
            continue  # rejected, or replaced by its edit
        if row["question"].answer_key is None:
            continue  # training needs the gold answer (the store accepts no such rationale now; older stores may hold some)
        from_curation = edited_from is not None and (edited_from["decision"] or {}).get("edited_id") == r["id"]
        accepted = verdict == "accept" or from_curation
        if flt.accepted_only and not accepted:
            continue
        if not accepted and r["source"] == "student":
            continue  # student rationales go out only when a reviewer accepted them
        ratings = row["ratings"] or (edited_from["ratings"] if edited_from else [])
        means = {name: _mean(g["scores"][name] for g in ratings if name in g["scores"]) for name in criteria.names()}
        overall = _mean(v for v in means.values() if v is not None)
        if len(ratings) < flt.min_raters or (flt.min_mean is not None and (overall is None or overall < flt.min_mean)):
            continue
        reviewer = (decision or (edited_from or {}).get("decision") or {}).get("reviewer")
        teacher = edited_from["rationale"]["model_id"] if edited_from else r["model_id"]
        record = DistillRecord(row["question"], r["text"], teacher, "human" if r["source"] == "human" else r["source"])
        out.append(
            record.to_json()
            | {
                "rationale_id": r["id"],
                "edited_from": r["edits_id"],
                "teacher_model": teacher,
                "raters": sorted(g["rater"] for g in ratings),
                "n_raters": len(ratings),
                "mean_score": overall,
                "reviewer": reviewer,
                "dataset": row["question"].source,
            }
            | {f"mean_{name}": value for name, value in means.items()}
        )
    return out


def _mean(values) -> float | None:
    values = list(values)
    return round(float(statistics.mean(values)), 4) if values else None


def write_export(rows: list[dict], destination: Path | str, fmt: str) -> Path:
    """Write rows atomically: a temporary sibling first, then a rename onto `destination`."""
    destination = Path(destination)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}.")
    _check_destination(destination, fmt)
    if fmt == "jsonl":
        write_jsonl_atomic(rows, destination)
    elif fmt == "parquet":
        with tempfiles.atomic(destination) as tmp:
            _write_parquet(rows, tmp)
    else:
        with tempfiles.atomic(destination, directory=True) as tmp:
            _dataset(rows).save_to_disk(str(tmp))
    return destination


def _check_destination(destination: Path, fmt: str) -> None:
    """Refuse to put an export where it would fail late or replace something else: a file onto
    a folder, or a dataset over a folder (or file) that is not an earlier dataset export."""
    if fmt != "dataset" and destination.is_dir():
        raise ConfigError(f"{destination} is a folder; give a file path such as {destination / f'distill.{fmt}'}.")
    if fmt == "dataset" and destination.exists():
        if not destination.is_dir() or not any((destination / name).exists() for name in DATASET_MARKERS):
            raise ConfigError(f"{destination} exists and is not an earlier dataset export; choose a new folder for the dataset.")


def push_to_hub(rows: list[dict], repo_id: str, token: str | None) -> None:
    """Publish the export as a hub dataset (needs a token and a network)."""
    if not token:
        raise ConfigError("pushing to the hub needs a token: set HF_TOKEN.")
    _dataset(rows).push_to_hub(repo_id, token=token)


def _dataset(rows: list[dict]):
    import datasets

    return datasets.Dataset.from_list(rows)


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
