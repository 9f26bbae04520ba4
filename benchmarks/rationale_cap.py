"""What a shorter stage-1 rationale costs in accuracy: the greedy rationales of an eval report,
cut after their first N sentences, read again by stage 2 (the same adapters), on whole dev splits.

    .venv/bin/python benchmarks/rationale_cap.py --adapters DIR --data-dir ../shared/data \\
        --report arc_easy/dev REPORT_DIR [--report ...] --sentences 1 2 3

Each REPORT_DIR is a `scicot eval --variant two-stage` output folder (its predictions.jsonl holds
every question's greedy rationale). A greedy rationale stopped after N sentences is exactly the
first N sentences of the unstopped one, so this measures a sentence cap at generation without
generating again; the tokens column is what stage 1 would write (and the app would wait for).
Prints a table per data set and writes benchmarks/results/rationale_cap.json. With `--save`, the
cap with the best accuracy over all the reports together (weighted by their questions; a tie goes
to fewer sentences) is saved with the stage-1 adapter (`rationale/generation.json`), where the
app, `scicot ask`, `sample` and `eval` read it; dev reports only.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from scicot_core.base_models import load_model
from scicot_core.dev_choices import sentence_cap
from scicot_core.formats import first_sentences
from scicot_core.questions import load_split
from scicot_core.settings import Settings
from scicot_core.student import Student, find_adapters, save_sentence_cap


def cap_rows(student: Student, questions, rationales: dict[str, str], caps: list[int | None]) -> dict:
    """Accuracy and mean rationale tokens of stage 2 reading each question's rationale cut at every cap."""
    keyed = [q for q in questions if q.id in rationales and q.answer_key]
    rows = {}
    for cap in caps:
        texts = [first_sentences(rationales[q.id], cap) for q in keyed]
        answers = []
        for i in tqdm(range(0, len(keyed), 16), desc=f"cap {cap or 'none'}", unit="batch", leave=False):
            answers += student.answers(keyed[i : i + 16], texts[i : i + 16])
        tokens = [len(student.lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        correct = sum(a.label == q.answer_key for a, q in zip(answers, keyed))
        rows[str(cap or "none")] = {
            "accuracy": round(100 * correct / len(keyed), 1),
            "tokens_mean": round(statistics.mean(tokens), 1),
            "labels": [a.label for a in answers],
        }
    uncut = rows["none"]["labels"]  # `caps` always ends with None: the rationales as generated
    for row in rows.values():
        row["changed_answers"] = sum(a != b for a, b in zip(row.pop("labels"), uncut))
    return {"questions": len(keyed), "caps": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--report",
        nargs=2,
        action="append",
        required=True,
        metavar=("DATASET/SPLIT", "DIR"),
        help="a `scicot eval` output folder with two-stage predictions, and the split it scored",
    )
    parser.add_argument("--adapters", type=Path, required=True, help="the adapter set the reports were made with")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sentences", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rationale_cap.json")
    parser.add_argument("--save", action="store_true", help="save the best cap with the adapters' rationale/ stage")
    parser.add_argument("--limit", type=int, help="only the first N questions of each report (a quick check)")
    args = parser.parse_args()
    if args.save and any(name.endswith("/test") for name, _ in args.report):
        parser.error("--save chooses on dev: leave the test reports out.")
    settings = Settings.from_env()
    lm = load_model(settings.student, settings.cache_dir, settings.offline, settings.threads)
    student = Student(lm, adapters=find_adapters(args.adapters), max_sentences=0)  # the reports' rationales as they are
    if not student.has("answer"):
        parser.error(f"{args.adapters} has no answer/ stage to read the rationales with.")
    caps: list[int | None] = [*sorted(set(args.sentences)), None]
    results = {}
    for name, folder in args.report:
        dataset, _, split = name.partition("/")
        rationales = {}
        for line in (Path(folder) / "predictions.jsonl").read_text().splitlines():
            row = json.loads(line)
            if "two-stage" in row:
                rationales[row["id"]] = row["two-stage"]["rationale"]
        result = cap_rows(student, load_split(dataset, split, args.data_dir)[: args.limit], rationales, caps)
        results[f"{dataset}/{split}"] = result
        print(f"\n**{dataset}/{split}** ({result['questions']} questions)\n")
        print("| sentences kept | two-stage accuracy | rationale tokens (mean) | answers changed |\n|---|---|---|---|")
        for cap, row in result["caps"].items():
            print(f"| {cap} | {row['accuracy']:.1f}% | {row['tokens_mean']:.1f} | {row['changed_answers']} |")
    report = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "model": student.model_id_of(["answer"]),
        "adapters": args.adapters.name,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.save:
        cap, chosen_on = sentence_cap(results)
        path = save_sentence_cap(args.adapters / "rationale", cap, chosen_on)
        print(
            f"\nsaved max_sentences={cap} ({chosen_on['accuracy'][str(cap or 'none')]:.1f}% over {chosen_on['questions']} dev questions) in {path}"
        )


if __name__ == "__main__":
    main()
