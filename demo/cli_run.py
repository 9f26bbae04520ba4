"""`scicot run RECIPE`: run a recipe's steps in order through the same commands a user types
(`scicot train | sample | eval`, scripts/ship_adapters.py), resumably, and keep its report card.

Each step works in `<run dir>/<step>[/<arm>]` beside a `scicot_step.json` marker: a finished
step whose settings and inputs are unchanged is skipped; a torn one runs again in place (train,
sample and eval go on from their own checkpoints); a changed one starts over, and so does every
step that reads it. A finished full run writes its summary to benchmarks/results/accuracy/.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from scicot_core import dev_choices, recipes, report_card
from scicot_core.distillation_set import parse_fold, write_jsonl_atomic
from scicot_core.errors import ConfigError, ScicotError
from scicot_core.questions import split_path
from scicot_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MARKER = "scicot_step.json"


@click.command(name="run")
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--smoke", type=click.IntRange(min=1), help="N questions and N training steps everywhere: a quick check of the whole path.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory [default: the recipe's data_dir, else SCICOT_DATA_DIR].",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the steps work [default: <cache>/runs/<recipe name>, -smoke<N> for a smoke run].",
)
@click.option("--test", "with_test", is_flag=True, help="Also run the steps marked final that score a test split (final candidates only).")
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the summary of a finished full run [default: benchmarks/results/accuracy of this checkout].",
)
@click.option("--check", is_flag=True, help="Only check the recipe and print each step's state; run nothing.")
def run(recipe_file, smoke, data_dir, run_dir, with_test, results, check):
    """Run the experiment a recipe file describes, skipping the steps already done.

    Writes <run dir>/report.md and report.json after every step (settings, data hashes, commit,
    device, minutes, accuracy per variant and split, paired counts against the recipe's
    baseline), and, once a full run is done, benchmarks/results/accuracy/<recipe>.json, from
    which `benchmarks/accuracy_tables.py` builds the tables of docs/benchmarks.md."""
    settings = Settings.from_env()
    recipe = recipes.load(recipe_file, data_dir, smoke, fallback_data_dir=settings.data_dir)
    run_dir = run_dir or settings.cache_dir / "runs" / (recipe.name + (f"-smoke{smoke}" if smoke else ""))
    runner = Runner(recipe, run_dir, settings, smoke, with_test)
    if check:
        width = max(len(step.id) for step in recipe.steps)
        for step in recipe.steps:
            click.echo(f"{step.id:{width}}  {step.kind:8} {runner.state(step)}")
        return
    summary = runner.run_all()
    if runner.complete and not smoke:
        out = results or _results_dir()
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{recipe.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        click.echo(f"summary: {out / (recipe.name + '.json')}")
    click.echo(f"report: {run_dir / 'report.md'}")


def _results_dir() -> Path:
    if not (ROOT / "benchmarks").is_dir():
        raise ConfigError("this is no checkout of the repository: give --results FOLDER for the run's summary.")
    return ROOT / "benchmarks" / "results" / "accuracy"


class Runner:
    """Runs a checked recipe's steps in order into one run folder."""

    def __init__(self, recipe: recipes.Recipe, run_dir: Path, settings: Settings, smoke: int | None, with_test: bool):
        self.recipe, self.run_dir, self.settings, self.smoke, self.with_test = recipe, run_dir, settings, smoke, with_test
        self.hashes: dict[str, str] = {}
        self.finished: dict[str, dict] = {}
        self.left: list[str] = []  # steps not run: test steps without --test, and what reads them
        self.complete = False

    def state(self, step: recipes.Step) -> str:
        """done, to run, torn (runs again in place), changed (starts over) or held (a test step)."""
        if self._held(step):
            return "held: a final test step (--test runs it)"
        h = recipes.step_hash(step, self.recipe, self.hashes)
        marker = self._marker(step)
        self.hashes[step.id] = h
        if marker is None:
            return "to run"
        if marker["hash"] != h:
            return "changed: starts over"
        return "done" if marker.get("done") else "torn: runs again, from its checkpoints"

    def _held(self, step: recipes.Step) -> bool:
        return (step.on_test and not self.with_test) or any(n in self.left for n in step.needs)

    def _marker(self, step: recipes.Step) -> dict | None:
        path = self.run_dir / step.folder / MARKER
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def run_all(self) -> dict:
        self._check_shipped()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.about = self._about()
        summary = {}
        for step in self.recipe.steps:
            if self._held(step):
                self.left.append(step.id)
                click.echo(f"== {step.id}: held (it scores a test split; `--test` runs it)")
                continue
            self._step(step)
            summary = self._report()
        self.complete = not self.left
        return summary or self._report()

    def _check_shipped(self) -> None:
        from scicot_core.base_models import family

        needs = any(recipes.parse_ref(v, s, self.recipe, s.id).step_id is None for s in self.recipe.steps for _, v in recipes.references(s))
        if needs and not (family(self.settings.student) and family(self.settings.student).adapters):
            raise ConfigError(
                f"the recipe reads @shipped, and the student {self.settings.student!r} ships no adapters; use the default student."
            )

    def _step(self, step: recipes.Step) -> None:
        h = recipes.step_hash(step, self.recipe, self.hashes)
        self.hashes[step.id] = h
        folder = self.run_dir / step.folder
        marker = self._marker(step)
        if marker and marker["hash"] == h and marker.get("done"):
            self.finished[step.id] = marker
            click.echo(f"== {step.id}: done before ({marker['minutes']:.1f} min)")
            return
        if marker and marker["hash"] != h:
            click.echo(f"== {step.id}: its settings or inputs changed; it starts over")
            shutil.rmtree(folder)
            marker = None
        folder.mkdir(parents=True, exist_ok=True)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (folder / MARKER).write_text(json.dumps({"hash": h, "started_utc": started, "done": False}))
        click.echo(f"== {step.id} ({step.kind}) {'goes on' if marker else 'starts'} {started}")
        begin = time.monotonic()
        try:
            getattr(self, f"_{step.kind}")(step, folder)
        except ScicotError as e:
            raise type(e)(f"step {step.id}: {e}") from None
        data = {name: recipes.file_sha256(f) for name, f in recipes.inputs(step, self.recipe).items()}
        record = {"hash": h, "started_utc": started, "done": True, "minutes": round((time.monotonic() - begin) / 60, 2), "data": data}
        (folder / MARKER).write_text(json.dumps(record, indent=2))
        self.finished[step.id] = record
        click.echo(f"== {step.id}: done in {record['minutes']:.1f} min")

    def _report(self) -> dict:
        summary = report_card.card(self.recipe, self.run_dir, self.finished, self.about)
        (self.run_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
        (self.run_dir / "report.md").write_text(report_card.markdown(summary))
        return summary

    def _about(self) -> dict:
        device, _ = _device()
        return {
            "file": _shown(self.recipe.path),
            "data_dir": _shown(self.recipe.data_dir) if self.recipe.data_dir else None,
            "commit": _commit(),
            "device": device,
            "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "smoke": self.smoke,
        }

    # Where a step's values point.
    def _path(self, step: recipes.Step, value: str, folder: bool = False) -> Path:
        if not value.startswith("@"):
            return recipes.adapter_folder(self.recipe, value) if folder else self.recipe.data_dir / value
        ref = recipes.parse_ref(value, step, self.recipe, step.id)
        if ref.step_id is None:
            from scicot_core.base_models import family

            return family(self.settings.student).adapters / ref.file
        return self.run_dir / self.recipe.step(ref.step_id).folder / ref.file

    def _adapters(self, step: recipes.Step, folder: Path) -> Path:
        """A folder of <stage>/ adapters: the one named, or links to each stage named."""
        value = step.keys["adapters"]
        if isinstance(value, str):
            return self._path(step, value)
        out = folder / "adapters"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for stage, source in value.items():
            (out / stage).symlink_to(self._path(step, source, folder=True).resolve(), target_is_directory=True)
        return out

    def _questions(self, step: recipes.Step, args: list[str]) -> Path:
        """Adds the options that name a step's questions; returns their file."""
        keys = step.keys
        if keys.get("questions", "").startswith("@"):
            args += ["--questions", str(self._path(step, keys["questions"]))]
            return self._path(step, keys["questions"])
        dataset, split = (keys["dataset"], keys["split"]) if "dataset" in keys else keys["questions"].split("/")
        args += ["--dataset", dataset, "--split", split]
        return split_path(self.recipe.data_dir, dataset, split)

    def _generation(self, step: recipes.Step, args: list[str], names: tuple[str, ...]) -> None:
        keys = step.keys
        for name in names:
            if name in keys:
                args += [f"--{name.replace('_', '-')}", str(self._value(step, name))]
        args += ["--batch-size", str(keys.get("batch_size") or (512 if _device()[1] else 32))]
        if self.recipe.data_dir:
            args += ["--data-dir", str(self.recipe.data_dir)]

    def _value(self, step: recipes.Step, name: str):
        """A step's setting, or what the choose step it names chose."""
        value = step.keys[name]
        if isinstance(value, str) and value.startswith("@"):
            return json.loads((self._path(step, value) / "choice.json").read_text())[name]
        return value

    # The kinds of step.
    def _pick(self, step: recipes.Step, folder: Path) -> None:
        """A seeded sample of a split's questions (of those the first rationale file explains,
        with `explained_only`, or whenever a recipe gives rationales and says nothing), its
        `part` K/N alone if given; each rationale file cut to them, under its own name."""
        keys, data = step.keys, self.recipe.data_dir
        dataset, split = keys["questions"].split("/")
        source = split_path(data, dataset, split)
        questions = _rows(source)
        files = [data / name for name in recipes.picked_files(step)]
        explained = files and keys.get("explained_only", True)
        pool = _rows(files[0]) if explained else questions  # the explained: in their rationale file's order
        picked = random.Random(keys.get("seed", 0)).sample(pool, min(keys.get("n") or len(pool), len(pool)))
        if "part" in keys:
            k, n = parse_fold(keys["part"])
            picked = picked[k * len(picked) // n : (k + 1) * len(picked) // n]
        ids = {q["id"] for q in picked}
        for i, path in enumerate(files):  # each keeps its shared name, so that training joins it with its questions
            rows = picked if explained and i == 0 else [row for row in _rows(path) if row["id"] in ids]
            write_jsonl_atomic([_rationale(row, keys.get("rationale_from", "rationale")) for row in rows], folder / path.name)
        write_jsonl_atomic((q for q in questions if q["id"] in ids), folder / "questions.jsonl")
        click.echo(f"picked {len(ids)} of {len(pool)} questions")

    def _train(self, step: recipes.Step, folder: Path) -> None:
        from .cli_method import train

        keys = step.keys
        args = ["--stage", keys["stage"], "--out", str(folder)]
        for value in keys.get("data", []):
            args += ["--data", str(self._path(step, value))]
        for value in keys.get("student_rationales", []):
            args += ["--student-rationales", str(self._path(step, value))]
        for value in keys.get("facts", []):
            args += ["--facts", str(self._path(step, value))]
        for pattern in keys.get("sources", []):
            args += ["--source", pattern]
        for name in keys.get("questions", []):
            args += ["--questions", name]
        if keys.get("max_per_question"):
            args += ["--max-per-question", str(keys["max_per_question"])]
        args += ["--correct-only"] * bool(keys.get("correct_only")) + ["--full"] * bool(keys.get("full"))
        for name, value in keys.get("settings", {}).items():
            args += ["--set", f"{name}={value if isinstance(value, str) else json.dumps(value)}"]
        if self.recipe.data_dir:
            args += ["--data-dir", str(self.recipe.data_dir)]
        train.main(args, prog_name="scicot train", standalone_mode=False)

    def _sample(self, step: recipes.Step, folder: Path) -> None:
        from .cli_method import sample

        args = ["--adapters", str(self._adapters(step, folder)), "--out", str(folder / "rationales.jsonl")]
        asked = self._questions(step, args)
        self._generation(step, args, ("samples", "temperature", "top_p", "seed", "max_tokens", "fold", "limit"))
        for value in step.keys.get("facts", []):
            args += ["--facts", str(self._path(step, value))]
        sample.main(args, prog_name="scicot sample", standalone_mode=False)
        gold = {q["id"]: q.get("answerKey") for q in _rows(asked)}
        written = _rows(folder / "rationales.jsonl")
        right = sum(r.get("conclusion") == gold.get(r["id"]) for r in written if gold.get(r["id"]))
        keyed = sum(1 for r in written if gold.get(r["id"]))
        stats = {"rationales": len(written), "conclude_gold": round(100 * right / keyed, 1) if keyed else None}
        (folder / report_card.SAMPLE_STATS).write_text(json.dumps(stats))

    def _eval(self, step: recipes.Step, folder: Path) -> None:
        from .cli_method import eval_

        args = ["--adapters", str(self._adapters(step, folder)), "--out", str(folder)]
        self._questions(step, args)
        for variant in step.keys.get("variants", []):
            args += ["--variant", variant]
        for value in step.keys.get("rationales", []):
            args += ["--rationales", str(self._path(step, value))]
        if "memory" in step.keys:
            args += ["--memory", str(self._path(step, step.keys["memory"]) / "memory.db")]
            args += ["--memory-k", str(step.keys.get("memory_k", 3)), "--memory-mode", step.keys.get("memory_mode", "joint")]
        names = ("samples", "temperature", "top_p", "seed", "max_tokens", "max_sentences", "prior_weight", "limit")
        self._generation(step, args, names)
        eval_.main(args, prog_name="scicot eval", standalone_mode=False)

    def _memory(self, step: recipes.Step, folder: Path) -> None:
        """The memory of facts from the training-split rationale files of `sources`."""
        from scicot_core import memory

        files, rows = memory.build_rows(self.recipe.data_dir, step.keys["sources"])
        stats = memory.build(folder / "memory.db", rows, {"files": [f.name for f in files]})
        click.echo(f"memory: {stats['facts']:,} facts from {len(files)} files")

    def _retrieve(self, step: recipes.Step, folder: Path) -> None:
        from .cli_memory import retrieve

        keys = step.keys
        args = ["--memory", str(self._path(step, keys["memory"]) / "memory.db"), "--out", str(folder / "rationales.jsonl")]
        self._questions(step, args)
        args += ["-k", str(keys.get("k", 3)), "--mode", keys.get("mode", "joint")]
        args += ["--limit", str(keys["limit"])] if "limit" in keys else []
        args += ["--data-dir", str(self.recipe.data_dir)] if self.recipe.data_dir else []
        retrieve.main(args, prog_name="scicot memory retrieve", standalone_mode=False)

    def _choose(self, step: recipes.Step, folder: Path) -> None:
        """Stage 1's sentence cap (benchmarks/rationale_cap.py's sweep) or two-stage+prior's
        weight (the reports' own sweeps), chosen on dev reports, in choice.json."""
        keys = step.keys
        reports = [
            (self.recipe.step(recipes.parse_ref(r, step, self.recipe, step.id).step_id), self._path(step, r)) for r in keys["reports"]
        ]
        if keys["what"] == "prior-weight":
            weight, chosen_on = dev_choices.prior_weight([json.loads((path / "results.json").read_text()) for _, path in reports])
            choice = {"prior_weight": weight, "chosen_on": chosen_on}
        else:
            script = [sys.executable, str(ROOT / "benchmarks" / "rationale_cap.py"), "--adapters", str(self._adapters(step, folder))]
            script += ["--data-dir", str(self.recipe.data_dir), "--out", str(folder / "rationale_cap.json")]
            for source, path in reports:
                script += ["--report", f"{source.keys['dataset']}/{source.keys['split']}", str(path)]
            script += ["--sentences", *map(str, keys.get("sentences", [1, 2, 3]))] + (
                ["--limit", str(keys["limit"])] if "limit" in keys else []
            )
            done = subprocess.run(script, capture_output=True, text=True)
            if done.returncode:
                raise ConfigError(f"rationale_cap.py: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
            cap, chosen_on = dev_choices.sentence_cap(json.loads((folder / "rationale_cap.json").read_text())["results"])
            choice = {"max_sentences": cap or 0, "chosen_on": chosen_on}
        (folder / "choice.json").write_text(json.dumps(choice, indent=2))
        click.echo(f"chose {', '.join(f'{k} = {v}' for k, v in choice.items() if k != 'chosen_on')}")

    def _ship(self, step: recipes.Step, folder: Path) -> None:
        dest = folder / step.keys["dest"] if self.smoke else ROOT / step.keys["dest"]  # a smoke run ships nothing
        adapters = self._adapters(step, folder)
        reports = [str(self._path(step, r)) for r in step.keys["reports"]]
        script = [sys.executable, str(ROOT / "scripts" / "ship_adapters.py"), str(adapters), "--stages", *step.keys["adapters"]]
        done = subprocess.run([*script, "--dest", str(dest), "--reports", *reports], capture_output=True, text=True)
        if done.returncode:
            raise ConfigError(f"ship_adapters.py: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
        click.echo(done.stdout.strip())


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rationale(row: dict, source: str) -> dict:
    """A rationale row as a pick writes it: as it is, or its text made of its `facts` list."""
    if source == "rationale":
        return row
    facts = [f.strip() for f in row.get("facts") or []]
    return row | {"rationale": " ".join(f[:1].upper() + f[1:] + ("" if f.endswith(".") else ".") for f in facts if f)}


def _shown(path: Path) -> str:
    """A path as the report keeps it: relative to the checkout where it is near, else its name
    alone (no machine's own folders in a committed file)."""
    relative = os.path.relpath(Path(path).resolve(), ROOT.resolve())
    return Path(path).name if relative.startswith(os.path.join("..", "..")) else relative


def _device() -> tuple[str, bool]:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}", True
    return f"CPU: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads", False


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
