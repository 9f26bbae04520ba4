"""The checks of a recipe beyond its keys' types (scicot_core/recipes.py reads and types it):
what each step's values name exists and is of the right kind, nothing trains on a dev or test
split, a test split's score feeds only a ship step, and the baseline and the `compare` pairs
name variants the eval steps score. Every refusal names the recipe, the key and what to write.
"""

from __future__ import annotations

from pathlib import Path

from . import variants
from .distillation_set import parse_fold, rationale_files
from .errors import ConfigError
from .evaluate import VARIANTS
from .memory import MAX_FACTS, MODES
from .questions import DATASETS, SPLITS, split_path
from .recipes import ADAPTER_FILES, CHOICES, SHIPPED, Recipe, Step, adapter_folder, parse_ref, picked_files, references
from .student import STAGES
from .train import TrainConfig, setting


def comparisons(recipe: Recipe, where: str) -> None:
    """The baseline and the `compare` pairs of `[recipe]`."""
    if recipe.baseline:
        _check_baseline(recipe, where)
    for pair in recipe.compare:
        _check_pair(recipe, pair, where)


def check_step(step: Step, recipe: Recipe, where: str) -> None:
    """One step, after the steps above it: records what it reads (`needs`) and the splits its
    output comes from (`splits`)."""
    keys = step.keys
    for key, value in references(step):
        ref = parse_ref(value, step, recipe, f"{where}: {key}")
        if ref.step_id:
            source = recipe.step(ref.step_id)
            step.needs.append(ref.step_id)
            step.splits |= source.splits
            if source.on_test and step.kind != "ship":
                raise ConfigError(
                    f"{where}: {key} reads {value!r}, made from a test split: test splits are for final reports only, "
                    "never for a choice; read a dev step instead."
                )
    for key in ("max_sentences", "prior_weight"):
        value = keys.get(key)
        if isinstance(value, str):
            ref = parse_ref(value, step, recipe, f"{where}: {key}")
            source = recipe.step(ref.step_id) if ref.step_id else None
            if source is None or source.kind != "choose" or CHOICES[source.keys["what"]] != key or ref.file:
                raise ConfigError(f"{where}: {key} = {value!r}: name a choose step whose what chooses {key} (or give a number).")
    getattr(_Checks, step.kind)(step, recipe, where)
    if step.kind == "train" and step.splits - {"train"}:
        raise ConfigError(f"{where}: it would train on {'/'.join(sorted(step.splits - {'train'}))} questions; train on train splits only.")
    if step.on_test and step.kind == "eval" and not keys.get("final"):
        raise ConfigError(f"{where}: it scores a test split; mark it final = true (final candidates only: `scicot run --test` runs it).")


def _data_file(recipe: Recipe, relative: str, where: str) -> Path:
    if recipe.data_dir is None:
        raise ConfigError(f"{where}: {relative!r} is read from the data directory; give --data-dir (or data_dir under [recipe]).")
    path = recipe.data_dir / relative
    if not path.is_file():
        raise ConfigError(f"{where}: {path} is missing; point --data-dir at a folder that has {relative}.")
    return path


def _split(recipe: Recipe, name: str, where: str) -> str:
    """A `dataset/split` name checked against the data directory; returns the split."""
    dataset, _, split = name.partition("/")
    if dataset not in DATASETS or split not in SPLITS:
        raise ConfigError(f"{where}: {name!r} is no dataset/split; write e.g. arc_easy/train ({', '.join(DATASETS)}; {', '.join(SPLITS)}).")
    _data_file(recipe, str(split_path(Path("."), dataset, split)), where)
    return split


class _Checks:
    """Per kind: the keys' values, beyond their types."""

    @staticmethod
    def pick(step: Step, recipe: Recipe, where: str) -> None:
        keys = step.keys
        step.splits.add(_split(recipe, keys["questions"], f"{where}: questions"))
        for name in picked_files(step):
            _data_file(recipe, name, f"{where}: rationales")
        if keys.get("n", 0) < 0:
            raise ConfigError(f"{where}: n is a number of questions (0: all), not {keys['n']}.")
        if keys.get("explained_only") and not picked_files(step):
            raise ConfigError(f"{where}: explained_only needs rationales, the file whose questions it keeps.")
        if keys.get("rationale_from", "rationale") not in ("rationale", "facts"):
            raise ConfigError(
                f"{where}: rationale_from {keys['rationale_from']!r}: give rationale (the text) or facts (a file's facts list)."
            )
        if "part" in keys:
            parse_fold(keys["part"])

    @staticmethod
    def train(step: Step, recipe: Recipe, where: str) -> None:
        keys = step.keys
        if keys["stage"] not in STAGES:
            raise ConfigError(f"{where}: stage {keys['stage']!r}; give one of {', '.join(STAGES)}.")
        for name in keys.get("questions", []):
            step.splits.add(_split(recipe, name, f"{where}: questions"))
        for name in keys.get("data", []) + keys.get("student_rationales", []) + keys.get("facts", []):
            if not name.startswith("@"):
                _data_file(recipe, name, f"{where}: data")
                step.splits.add(_file_split(name))
        if keys.get("sources"):
            _sources(step, recipe, where)
        config = TrainConfig(keys["stage"], ["?"], "?", data_dir=str(recipe.data_dir or "") or None)
        for name, value in keys.get("settings", {}).items():
            setattr(config, name, setting(name, value, f"{where}: settings.{name}"))
        config.student_rationales, config.facts = keys.get("student_rationales", []), keys.get("facts", [])
        config.sources, config.questions = keys.get("sources", []), keys.get("questions", [])
        try:
            config.check()
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    @staticmethod
    def memory(step: Step, recipe: Recipe, where: str) -> None:
        _sources(step, recipe, where)
        step.splits.add("train")  # the builder reads training-split files only

    @staticmethod
    def retrieve(step: Step, recipe: Recipe, where: str) -> None:
        keys = step.keys
        _memory_ref(step, recipe, where)
        _scored_questions(step, recipe, where)
        if not 1 <= keys.get("k", 1) <= MAX_FACTS:
            raise ConfigError(f"{where}: k is how many facts per question (1 to {MAX_FACTS}), not {keys['k']}.")
        if keys.get("mode", "joint") not in MODES:
            raise ConfigError(f"{where}: mode {keys['mode']!r}; give one of {', '.join(MODES)}.")

    @staticmethod
    def sample(step: Step, recipe: Recipe, where: str) -> None:
        _questions(step, recipe, where)
        _adapters(step, recipe, where)
        for name in step.keys.get("facts", []):
            if not name.startswith("@"):
                _data_file(recipe, name, f"{where}: facts")

    @staticmethod
    def eval(step: Step, recipe: Recipe, where: str) -> None:
        keys = step.keys
        _scored_questions(step, recipe, where)
        if "memory" in keys:
            _memory_ref(step, recipe, where)
        elif reading := [v for v in keys.get("variants", []) if v in VARIANTS and variants.get(v).reads_memory]:
            raise ConfigError(f'{where}: variants: {reading[0]} reads the memory; add memory = "@<memory step>".')
        elif {"memory_k", "memory_mode"} & set(keys):
            raise ConfigError(f'{where}: memory_k and memory_mode say how the memory is read; add memory = "@<memory step>".')
        if not 1 <= keys.get("memory_k", 1) <= MAX_FACTS:
            raise ConfigError(f"{where}: memory_k is how many facts per question (1 to {MAX_FACTS}), not {keys['memory_k']}.")
        if keys.get("memory_mode", "joint") not in MODES:
            raise ConfigError(f"{where}: memory_mode {keys['memory_mode']!r}; give one of {', '.join(MODES)}.")
        unknown = [v for v in keys.get("variants", []) if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"{where}: variants: unknown {unknown[0]!r}; give some of {', '.join(VARIANTS)}.")
        _adapters(step, recipe, where)

    @staticmethod
    def choose(step: Step, recipe: Recipe, where: str) -> None:
        keys = step.keys
        if keys["what"] not in CHOICES:
            raise ConfigError(f"{where}: what {keys['what']!r}; give one of {', '.join(CHOICES)}.")
        for value in keys["reports"]:
            ref = parse_ref(value, step, recipe, f"{where}: reports")
            source = recipe.step(ref.step_id) if ref.step_id else None
            if source is None or source.kind != "eval" or ref.file:
                raise ConfigError(f"{where}: reports: {value!r} is no eval step; name the eval steps it chooses on (@step:arm).")
            if keys["what"] == "sentence-cap" and "dataset" not in source.keys:
                raise ConfigError(f"{where}: reports: {value!r} scores a questions file; the sentence cap needs dataset and split.")
        if keys["what"] == "sentence-cap" and "adapters" not in keys:
            raise ConfigError(f"{where}: adapters is missing: the adapter set whose stage 2 reads the cut rationales.")
        if "adapters" in keys:
            _adapters(step, recipe, where)

    @staticmethod
    def ship(step: Step, recipe: Recipe, where: str) -> None:
        _adapters(step, recipe, where)
        if not isinstance(step.keys["adapters"], dict):
            raise ConfigError(f"{where}: adapters takes a table of stage = '@step', the stages to ship.")
        dest = Path(step.keys["dest"])
        if dest.is_absolute() or ".." in dest.parts or dest.parts[:1] != ("candidates",):
            raise ConfigError(f"{where}: dest {step.keys['dest']!r}: ship into candidates/<name> of the repository.")


def _sources(step: Step, recipe: Recipe, where: str) -> None:
    if recipe.data_dir is None:
        raise ConfigError(f"{where}: sources are read from the data directory; give --data-dir.")
    for pattern in step.keys["sources"]:
        if not rationale_files(recipe.data_dir, [pattern]):
            raise ConfigError(f"{where}: sources: no rationale file of {recipe.data_dir / 'rationales'} matches {pattern!r}.")


def _file_split(name: str) -> str:
    """The split a shared data file belongs to, from its name (`*_train.jsonl`, `arc_easy/dev.jsonl`)."""
    stem = Path(name).stem
    return next((s for s in SPLITS if stem == s or stem.endswith("_" + s)), "train")


def _memory_ref(step: Step, recipe: Recipe, where: str) -> None:
    ref = parse_ref(step.keys["memory"], step, recipe, f"{where}: memory")
    if ref.step_id is None or recipe.step(ref.step_id).kind != "memory" or ref.file:
        raise ConfigError(f"{where}: memory {step.keys['memory']!r}: name a memory step (@step).")


def _scored_questions(step: Step, recipe: Recipe, where: str) -> None:
    """dataset and split, or questions: the questions an eval or retrieve step reads."""
    keys = step.keys
    if ("dataset" in keys) != ("split" in keys) or ("dataset" in keys) == ("questions" in keys):
        raise ConfigError(f"{where}: give dataset and split, or questions, for the questions it reads.")
    if "dataset" in keys:
        step.splits.add(_split(recipe, f"{keys['dataset']}/{keys['split']}", f"{where}: dataset"))
    else:
        _questions(step, recipe, where)


def _questions(step: Step, recipe: Recipe, where: str) -> None:
    value = step.keys["questions"]
    if not value.startswith("@"):
        step.splits.add(_split(recipe, value, f"{where}: questions"))


def _adapters(step: Step, recipe: Recipe, where: str) -> None:
    value = step.keys["adapters"]
    if isinstance(value, str) and not value.startswith("@"):
        raise ConfigError(f"{where}: adapters {value!r}: name a step (@step) or @{SHIPPED}, or give a table of stage = folder.")
    for stage, folder in value.items() if isinstance(value, dict) else []:
        if stage not in STAGES:
            raise ConfigError(f"{where}: adapters.{stage}: no such stage; give some of {', '.join(STAGES)}.")
        if not folder.startswith("@"):
            path = adapter_folder(recipe, folder)
            if not any((path / name).is_file() for name in ADAPTER_FILES[:2]):
                raise ConfigError(
                    f"{where}: adapters.{stage} = {folder!r}: {path} holds no trained stage (adapter_config.json); "
                    f"name a train step (@step), @{SHIPPED}/{stage}, or a folder a ship step wrote (relative to the recipe)."
                )


def _check_baseline(recipe: Recipe, where: str) -> None:
    """`baseline = "step[:arm]/variant"`, a variant of one eval step; or `baseline = "variant"`,
    that variant within every eval step (each step's other variants against it)."""
    target, _, variant = recipe.baseline.rpartition("/")
    evals = {s.id: s for s in recipe.steps if s.kind == "eval"}
    if not target:
        if variant not in VARIANTS:
            raise ConfigError(
                f"{where}: [recipe] baseline {variant!r} is no variant; give one of {', '.join(VARIANTS)}, or eval-step/variant."
            )
        return
    if target not in evals or not variant:
        raise ConfigError(
            f"{where}: [recipe] baseline {recipe.baseline!r}: write eval-step[:arm]/variant; its eval steps are {', '.join(evals) or 'none'}."
        )
    named = evals[target].keys.get("variants")
    if named and variant not in named:
        raise ConfigError(f"{where}: [recipe] baseline {recipe.baseline!r}: step {target} scores {', '.join(named)}.")


def _check_pair(recipe: Recipe, pair: tuple[str, str], where: str) -> None:
    """`compare = [["step[:arm]/variant", "step[:arm]/variant"], ...]`: two variants scored on the
    same questions (the same dataset and split, or the same questions file)."""
    evals = {s.id: s for s in recipe.steps if s.kind == "eval"}
    steps = []
    for side in pair:
        target, _, variant = side.rpartition("/")
        step = evals.get(target)
        if step is None or (step.keys.get("variants") and variant not in step.keys["variants"]) or variant not in VARIANTS:
            raise ConfigError(
                f"{where}: [recipe] compare {side!r}: write eval-step[:arm]/variant of a variant it scores; "
                f"its eval steps are {', '.join(evals) or 'none'}."
            )
        steps.append(step)
    if len(set(pair)) == 1 or len({tuple(s.keys.get(k) for k in ("dataset", "split", "questions")) for s in steps}) > 1:
        raise ConfigError(f"{where}: [recipe] compare {list(pair)}: pair two variants scored on the same questions.")
