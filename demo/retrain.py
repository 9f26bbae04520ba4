"""Retraining from the Curate tab: `Retraining` owns the one background run (its state behind a
lock: one run at a time, progress with an estimate of the time left, cancelling), and `run`
trains both stages on a snapshot of the distillation set, then offers the new adapter set only
once it has loaded. Its state lives in the server process, so a page reload finds it again."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from scicot_core.errors import DataError, ScicotError

from .render import safe

log = logging.getLogger(__name__)

STAGES = ("rationale", "answer")
PARTIAL = ".partial"  # a run's folder until both stages are trained: never offered as a student
SNAPSHOT = "distillation_set.jsonl"  # the set as it was when the run began, kept beside its adapters


class Retraining:
    """The state of the latest retraining run, changed by its thread and read by the status poll."""

    def __init__(self, clock=time.time):
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._clock = clock
        self._run: dict = {}

    def begin(self, name: str, total_steps: int) -> None:
        """Mark a run as started; refused while another is going."""
        with self._lock:
            if self._run.get("state") == "running":
                raise DataError(f"retraining {self._run['name']} is still going; wait for it to finish, or cancel it.")
            self._cancel.clear()
            self._run = {"state": "running", "name": name, "stage": "", "step": 0, "total": total_steps, "started": self._clock()}

    def at_stage(self, stage: str) -> None:
        with self._lock:
            self._run["stage"] = stage

    def advance(self) -> bool:
        """Count one training step; True when the run should stop (it was cancelled)."""
        with self._lock:
            self._run["step"] += 1
        return self._cancel.is_set()

    def cancel(self) -> bool:
        """Ask the running run to stop after its current step; False when none is running."""
        with self._lock:
            if self._run.get("state") != "running":
                return False
            self._cancel.set()
            return True

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def finish(self, state: str, **details) -> None:
        """End the run as `done`, `failed` or `cancelled`, with what the reviewer should see."""
        with self._lock:
            self._run.update(state=state, finished=self._clock(), **details)

    def snapshot(self) -> dict:
        """A copy of the run's state (empty before the first run)."""
        with self._lock:
            return dict(self._run)

    def seconds_left(self) -> int | None:
        """The time the running run still needs at its pace so far, or None before its first step."""
        r = self.snapshot()
        if r.get("state") != "running" or not r["step"]:
            return None
        per_step = (self._clock() - r["started"]) / r["step"]
        return round(per_step * (r["total"] - r["step"]))


def start(deps, steps: int) -> str:
    """Snapshot the distillation set into a new run folder and train on it in a background thread."""
    data = deps.settings.distill_path
    if not data.exists() or not data.read_text().strip():
        raise DataError("the distillation set is empty: accept rationales and write the set first.")
    steps = int(steps or 0)
    if not 1 <= steps <= 2000:
        raise DataError("give 1 to 2000 retraining steps per stage.")
    name = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    deps.retrain.begin(name, steps * len(STAGES))
    work = runs_dir(deps.settings) / (name + PARTIAL)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data, work / SNAPSHOT)
    threading.Thread(target=run, args=(deps, work, steps), daemon=True).start()
    return f"Retraining **{name}** started ({steps} steps per stage)."


def runs_dir(settings) -> Path:
    return settings.cache_dir / "retrained"


def run(deps, work: Path, steps: int) -> None:
    """Train both stages into `work`; then rename it to its final name and offer it as a student."""
    from transformers import TrainerCallback

    from scicot_core.train import TrainConfig, main

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if deps.retrain.advance():
                control.should_training_stop = True

    settings = deps.settings
    try:
        for stage in STAGES:
            deps.retrain.at_stage(stage)
            config = TrainConfig(
                stage=stage,
                data=[str(work / SNAPSHOT)],
                output_dir=str(work / stage),
                base_model=settings.student,
                max_steps=steps,
                save_steps=max(10, steps),
            )
            main(config, settings.cache_dir, settings.offline, progress=False, callbacks=[Progress()])
            if deps.retrain.cancelled:
                deps.retrain.finish("cancelled")
                return
        final = work.with_name(work.name.removesuffix(PARTIAL))
        work.rename(final)
        name = f"retrained {final.name}"
        problem = deps.students.add_folder(name, final, required=STAGES, load=True)
        if problem:
            deps.retrain.finish("failed", error=problem)
            return
        deps.retrain.at_stage("comparing with the default on dev questions")
        deps.retrain.finish("done", student=name, comparison=_compared(deps, name))
    except Exception as e:  # the thread's end: shown to the reviewer in plain words, logged whole
        log.exception("retraining %s failed", work.name)
        deps.retrain.finish("failed", error=plain(e, settings))


def dev_sample(deps) -> tuple[list, str]:
    """The fixed dev questions comparisons run on: the first `compare_n` of ARC-Easy dev where
    the data directory has it, else of the bundled sample set; and their name."""
    from scicot_core.questions import load_split, split_path

    n, data = deps.settings.compare_n, deps.settings.data_dir
    if data and split_path(data, "arc_easy", "dev").exists():
        return load_split("arc_easy", "dev", data)[:n], "ARC-Easy dev"
    return [q for q, _ in deps.questions.samples][:n], "SciCoT sample set"


def comparison(deps, new: str) -> str:
    """The new student beside the current default (the first other set offered), as Markdown."""
    from scicot_core.evaluate import compare, comparison_table

    default = next((n for n in deps.students.names() if n != new), None)
    questions, source = dev_sample(deps)
    references = {q.id: text for q in questions if (text := (deps.questions.stored_rationale(q.id) or ("",))[0])}
    names = [n for n in (new, default) if n]
    result = compare({n: deps.students.student(n) for n in names}, questions, references)
    return f"On the same {result['n']} {source} questions:\n\n" + comparison_table(result, safe)


def _compared(deps, new: str) -> str:
    try:
        return comparison(deps, new)
    except Exception as e:  # the new set is offered all the same; the reviewer sees why there is no table
        log.exception("comparing %s failed", new)
        return f"The comparison with the default failed: {plain(e, deps.settings)}"


def plain(error: Exception, settings) -> str:
    """An error as the reviewer sees it: a domain error's message with the server's folders
    named only by their last part; anything else by its kind, the details left in the log."""
    if not isinstance(error, ScicotError):
        return f"an unexpected {type(error).__name__} (the details are in the server log)."
    message = str(error)
    for folder in sorted({str(settings.cache_dir), str(settings.distill_path.parent)}, key=len, reverse=True):
        message = message.replace(folder + "/", "").replace(folder, "the server's folder")
    return message


def status(deps) -> str:
    """The run's state in words, and any adapter set that is not offered and why."""
    r = deps.retrain.snapshot()
    lines = [_run_line(r, deps.retrain.seconds_left())] if r else ["No retraining run yet."]
    lines += [f"Not offered: **{safe(name)}**: {safe(why)}" for name, why in deps.students.failures().items()]
    return "\n\n".join(lines)


def _run_line(r: dict, left: int | None) -> str:
    name = safe(r["name"])
    if r["state"] == "running":
        eta = f"about {left} s left" if left is not None else "estimating the time left"
        return f"Retraining **{name}**: stage {r['stage']}, step {r['step']} of {r['total']}, {eta}."
    if r["state"] == "done":
        return f"Retrained **{name}**: choose “{safe(r['student'])}” as Student in the Ask tab.\n\n{r.get('comparison', '')}"
    if r["state"] == "cancelled":
        return f"Retraining **{name}** was cancelled; nothing was added."
    return f"Retraining **{name}** failed: {safe(r.get('error', ''))}"
