"""`scicot compare`: several adapter sets on the same questions, side by side: two-stage and
answer-only accuracy, and how often each student's rationale concludes what the teacher's
reference rationale concludes (the comparison the app shows after a retrain)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scicot_core.errors import ConfigError
from scicot_core.settings import Settings

from .cli_method import _questions, question_options


@click.command()
@click.argument("adapter_sets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@question_options
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=64, show_default=True, help="Rationale tokens at most.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(adapter_sets, dataset, split, questions_file, limit, data_dir, batch_size, max_tokens, as_json):
    """Compare ADAPTER_SETS (two or more folders of stage adapters, e.g. the shipped set and a
    retrained one) on the same questions. The teacher's references are the stored rationales
    of the data directory (or the sample set's); questions without one count only for accuracy.

        scicot compare runs/a/adapters runs/b/adapters --dataset arc_easy --split dev --limit 100
    """
    from scicot_core.base_models import load_model
    from scicot_core.evaluate import compare as run_compare
    from scicot_core.evaluate import comparison_table
    from scicot_core.student import Student, find_adapters
    from scicot_core.teachers import StoredTeacher

    if len(set(adapter_sets)) < 2:
        raise ConfigError("give at least two different adapter folders to compare.")
    found = {}
    for folder in adapter_sets:
        stages = find_adapters(folder)
        if "rationale" not in stages or "answer" not in stages:
            raise ConfigError(f"{folder} has no rationale/ and answer/ adapters; give folders written by `scicot train`.")
        found[folder] = stages
    names = _short_names(list(found))
    settings = Settings.from_env()
    questions = _questions(dataset, split, data_dir, questions_file, settings, limit)
    stored = StoredTeacher.from_data_dir(data_dir or settings.data_dir) or StoredTeacher.samples()
    references = {q.id: stored.by_id[q.id][0] for q in questions if q.id in stored.by_id}
    lm = load_model(settings.student, settings.cache_dir, settings.offline, settings.threads)
    students = {name: Student(lm, adapters=stages, max_rationale_tokens=max_tokens) for name, stages in zip(names, found.values())}
    result = run_compare(students, questions, references, batch_size)
    result["folders"] = {name: str(folder) for name, folder in zip(names, found)}
    result["references"] = len(references)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['n']} questions, {len(references)} with a teacher reference\n")
    click.echo(comparison_table(result))


def _short_names(folders: list[Path]) -> list[str]:
    """Each folder by its shortest trailing path that tells it apart from the others."""
    for depth in range(1, max(len(f.resolve().parts) for f in folders) + 1):
        names = [str(Path(*f.resolve().parts[-depth:])) for f in folders]
        if len(set(names)) == len(names):
            return names
    return [str(f) for f in folders]
