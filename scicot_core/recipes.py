"""Recipes: one TOML file per experiment (`recipes/*.toml`), its steps checked before anything
runs (scicot_core/recipe_checks.py), and the plan `scicot run` follows (demo/cli_run.py).

A recipe names its steps in order; each step has a kind (pick, train, sample, eval, choose, ship), its
data and settings, and optionally arms: variants of the step, each a table of keys laid over the
step's own. A value `@step[:arm][/file]` is what an earlier step made; `@shipped` is the
package's distilled student. Every refusal names the recipe, the key and what to write instead.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .distillation_set import rationale_files
from .errors import ConfigError
from .memory import FACTS_VERSION
from .questions import split_path
from .student import SENTENCES_FILE

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# What each kind of step takes: key -> type name ("adapters": a folder or {stage: folder}).
COMMON = {"kind": "str", "about": "str", "arms": "table", "final": "bool"}
KINDS: dict[str, dict[str, str]] = {
    "pick": {
        "questions": "str",
        "rationales": "files",
        "explained_only": "bool",
        "rationale_from": "str",
        "n": "int",
        "seed": "int",
        "part": "str",
    },
    "train": {
        "stage": "str",
        "data": "list",
        "sources": "list",
        "questions": "list",
        "max_per_question": "int",
        "correct_only": "bool",
        "student_rationales": "list",
        "facts": "list",
        "full": "bool",
        "settings": "table",
    },
    "sample": {
        "questions": "str",
        "adapters": "adapters",
        "samples": "int",
        "temperature": "number",
        "top_p": "number",
        "seed": "int",
        "max_tokens": "int",
        "batch_size": "int",
        "fold": "str",
        "facts": "list",
        "limit": "int",
    },
    "eval": {
        "dataset": "str",
        "split": "str",
        "questions": "str",
        "adapters": "adapters",
        "variants": "list",
        "rationales": "list",
        "samples": "int",
        "temperature": "number",
        "top_p": "number",
        "seed": "int",
        "max_tokens": "int",
        "max_sentences": "int or choice",
        "prior_weight": "number or choice",
        "memory": "str",
        "memory_k": "int",
        "memory_mode": "str",
        "batch_size": "int",
        "limit": "int",
    },
    "ship": {"adapters": "adapters", "dest": "str", "reports": "list"},
    "memory": {"sources": "list"},
    "retrieve": {"memory": "str", "dataset": "str", "split": "str", "questions": "str", "k": "int", "mode": "str", "limit": "int"},
    "choose": {"what": "str", "reports": "list", "adapters": "adapters", "sentences": "ints", "limit": "int"},
}
REQUIRED = {
    "pick": ("questions",),
    "train": ("stage",),
    "choose": ("what", "reports"),
    "sample": ("questions", "adapters"),
    "eval": ("adapters",),
    "ship": ("adapters", "dest", "reports"),
    "memory": ("sources",),
    "retrieve": ("memory",),
}
# The files each kind makes, as `@step/<file>` may name them (a pick also writes its rationale file).
MAKES = {
    "pick": {"questions.jsonl"},
    "sample": {"rationales.jsonl"},
    "choose": {"choice.json"},
    "eval": {"predictions.jsonl", "results.json"},
    "train": set(),
    "ship": set(),
    "memory": {"memory.db"},
    "retrieve": {"rationales.jsonl"},
}
TOP = {
    "recipe": {"name": "str", "about": "str", "baseline": "str", "compare": "pairs", "data_dir": "str"},
    "defaults": None,
    "steps": None,
}
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
REF = re.compile(r"^@([a-z0-9][a-z0-9_-]*)(?::([a-z0-9][a-z0-9_-]*))?(?:/(.+))?$")
SHIPPED = "shipped"
# The files of a trained stage folder whose contents a step that reads it by path depends on.
ADAPTER_FILES = ("adapter_config.json", "config.json", "adapter_model.safetensors", "model.safetensors", SENTENCES_FILE)
# What a choose step chooses on dev reports, and the key of a later step that takes it.
CHOICES = {"sentence-cap": "max_sentences", "prior-weight": "prior_weight"}
_TYPES = {"str": str, "int": int, "bool": bool, "number": (int, float), "list": list, "table": dict}


@dataclass
class Step:
    """One step of a plan: a kind, its keys with its arm laid over them, and the steps it reads."""

    name: str
    arm: str | None
    kind: str
    keys: dict
    needs: list[str] = field(default_factory=list)  # ids of the steps it reads, in order
    splits: set[str] = field(default_factory=set)  # the splits its output came from

    @property
    def id(self) -> str:
        return f"{self.name}:{self.arm}" if self.arm else self.name

    @property
    def folder(self) -> str:
        return f"{self.name}/{self.arm}" if self.arm else self.name

    @property
    def on_test(self) -> bool:
        return "test" in self.splits


@dataclass
class Recipe:
    """A checked recipe: its name, the baseline its paired counts are against, its steps in order."""

    path: Path
    name: str
    about: str
    baseline: str | None
    data_dir: Path | None
    steps: list[Step]
    sha256: str
    compare: list[tuple[str, str]] = field(default_factory=list)  # more pairs of step/variant to count

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


@dataclass(frozen=True)
class Ref:
    """`@step[:arm][/file]` resolved: the id of the step it names (None for @shipped) and the file."""

    step_id: str | None
    file: str


def load(path: Path, data_dir: Path | None = None, smoke: int | None = None, fallback_data_dir: Path | None = None) -> Recipe:
    """Read and check a recipe: unknown keys, wrong types, files that are not there, references
    to no earlier step, and a test split feeding anything but a ship step are refused here,
    before a step runs. The data directory is `data_dir`, else the recipe's own (relative to
    the recipe file), else `fallback_data_dir`. `smoke` takes that many questions and steps
    everywhere."""
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; give a recipe file, e.g. recipes/choices-check.toml.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where} is not valid TOML ({e}); fix that line.") from None
    _keys(raw, {k: "table" for k in TOP}, where, required=("recipe", "steps"))
    head = raw["recipe"]
    _keys(head, TOP["recipe"], f"{where}: [recipe]", required=("name",))
    if not NAME.match(head["name"]):
        raise ConfigError(f"{where}: [recipe] name {head['name']!r}: use lower-case letters, digits, - and _.")
    data = data_dir or (path.parent / head["data_dir"] if "data_dir" in head else fallback_data_dir)
    defaults = raw.get("defaults", {})
    _keys(defaults, {k: "table" for k in KINDS}, f"{where}: [defaults]")
    steps: list[Step] = []
    for name, body in raw["steps"].items():
        steps += _expand(name, body, defaults, where)
    if not steps:
        raise ConfigError(f"{where}: no steps; add at least one [steps.NAME] table.")
    pairs = [tuple(pair) for pair in head.get("compare", [])]
    recipe = Recipe(path, head["name"], head.get("about", ""), head.get("baseline"), data, steps, sha256(path), pairs)
    from . import recipe_checks  # the checks read this module's model of a recipe

    for step in steps:
        if smoke:
            _smoke(step, smoke)
        recipe_checks.check_step(step, recipe, f"{where}: steps.{step.id}")
    recipe_checks.comparisons(recipe, where)
    return recipe


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keys(table, kinds: dict[str, str], where: str, required: tuple[str, ...] = ()) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table.")
    for key, value in table.items():
        if key not in kinds:
            raise ConfigError(f"{where}: unknown key {key!r}; it takes {', '.join(sorted(kinds))}.")
        _type(value, kinds[key], f"{where}: {key}")
    for key in required:
        if key not in table:
            raise ConfigError(f"{where}: {key} is missing; add it.")


def _type(value, kind: str | None, where: str) -> None:
    if kind is None:
        return
    if kind.endswith(" or choice"):  # a value, or "@step" of a choose step that makes it
        return None if isinstance(value, str) and value.startswith("@") else _type(value, kind.split()[0], where)
    if kind == "pairs":
        if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in value):
            return None
        raise ConfigError(f'{where} takes a list of pairs, e.g. [["eval:lm/two-stage", "eval:choices/two-stage"]], not {value!r}.')
    if kind == "ints":
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            return None
        raise ConfigError(f"{where} takes a list of whole numbers above 0, e.g. [1, 2, 3], not {value!r}.")
    if kind == "files":  # one file or a list of them
        return _type([value] if isinstance(value, str) else value, "list", where)
    if kind == "adapters":
        if isinstance(value, str) or (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            return
        raise ConfigError(f"{where} takes a folder ('@step') or a table of stage = folder, not {value!r}.")
    wanted = _TYPES[kind]
    if not isinstance(value, wanted) or (kind != "bool" and isinstance(value, bool)):
        words = {
            "str": "text",
            "int": "a whole number",
            "bool": "true or false",
            "number": "a number",
            "list": "a list",
            "table": "a table",
        }
        raise ConfigError(f"{where} takes {words[kind]}, not {value!r}.")
    if kind == "list" and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} takes a list of text, not {value!r}.")


def _expand(name: str, body, defaults: dict, where: str) -> list[Step]:
    """A step table as one Step, or one per arm, defaults and arm laid over the step's keys."""
    here = f"{where}: steps.{name}"
    if not NAME.match(name) or name == SHIPPED:
        raise ConfigError(f"{here}: name steps with lower-case letters, digits, - and _ (and not {SHIPPED!r}).")
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise ConfigError(f"{here}: kind is missing; give one of {', '.join(KINDS)}.")
    kind = body["kind"]
    if kind not in KINDS:
        raise ConfigError(f"{here}: unknown kind {kind!r}; give one of {', '.join(KINDS)}.")
    kinds = COMMON | KINDS[kind]
    _keys(body, kinds, here)
    _keys(defaults.get(kind, {}), kinds, f"{where}: [defaults.{kind}]")
    base = _merge(defaults.get(kind, {}), {k: v for k, v in body.items() if k != "arms"})
    _keys(base, kinds, here, REQUIRED[kind] if "arms" not in body else ())
    arms = body.get("arms")
    if arms is None:
        return [Step(name, None, kind, base)]
    if not arms:
        raise ConfigError(f"{here}: arms is empty; give at least one [steps.{name}.arms.NAME] table or drop arms.")
    steps = []
    for arm, keys in arms.items():
        at = f"{here}.arms.{arm}"
        if not NAME.match(arm):
            raise ConfigError(f"{at}: name arms with lower-case letters, digits, - and _.")
        _keys(keys, KINDS[kind] | {"about": "str", "final": "bool"}, at)
        merged = _merge(base, keys)
        _keys(merged, kinds, at, REQUIRED[kind])
        steps.append(Step(name, arm, kind, merged))
    return steps


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def _smoke(step: Step, n: int) -> None:
    """N questions and N steps: picks take N, trainings stop after N steps on N examples, samples
    and evaluations read the first N questions."""
    keys = step.keys
    if step.kind == "pick":
        keys["n"] = min(keys.get("n") or n, n)
    elif step.kind == "train":
        keys["settings"] = keys.get("settings", {}) | {"max_steps": n, "limit": n}
    elif step.kind in ("sample", "eval", "choose", "retrieve"):
        keys["limit"] = n


def parse_ref(value: str, step: Step, recipe: Recipe, where: str) -> Ref:
    """`@step[:arm][/file]` as the earlier step it names; a step with arms is read arm by arm:
    with no arm given, the arm of the same name as the reading step's."""
    match = REF.match(value)
    if not match:
        raise ConfigError(f"{where}: {value!r} is no reference; write @step, @step:arm or @step/file.")
    name, arm, file = match.groups()
    if name == SHIPPED:
        if arm:
            raise ConfigError(f"{where}: @{SHIPPED} has no arms; write @{SHIPPED}/<stage>.")
        return Ref(None, file or "")
    earlier = recipe.steps[: recipe.steps.index(step)]
    named = [s for s in earlier if s.name == name]
    if not named:
        later = any(s.name == name for s in recipe.steps)
        raise ConfigError(f"{where}: {value!r} names {'a later step' if later else 'no step'}; a step reads only the steps above it.")
    if named[0].arm is None:
        if arm:
            raise ConfigError(f"{where}: step {name} has no arms; write @{name}{'/' + file if file else ''}.")
        target = named[0]
    else:
        wanted = arm or step.arm
        found = [s for s in named if s.arm == wanted]
        if not found:
            arms = ", ".join(s.arm for s in named)
            raise ConfigError(f"{where}: {value!r}: step {name} has arms {arms}; name one, as @{name}:{named[0].arm}.")
        target = found[0]
    if file and target.kind in MAKES and file not in _makes(target):
        raise ConfigError(f"{where}: step {target.id} makes no {file!r}; it makes {', '.join(sorted(_makes(target))) or 'a folder'}.")
    return Ref(target.id, file or "")


def _makes(step: Step) -> set[str]:
    return MAKES[step.kind] | ({Path(f).name for f in picked_files(step)} if step.kind == "pick" else set())


def picked_files(step: Step) -> list[str]:
    """The rationale files a pick step reads (and writes again, cut to its questions)."""
    value = step.keys.get("rationales", [])
    return [value] if isinstance(value, str) else value


def references(step: Step) -> list[tuple[str, str]]:
    """(key, value) of every value of a step that may name an earlier step, in key order."""
    found = []
    for key in (
        "questions",
        "data",
        "student_rationales",
        "facts",
        "rationales",
        "reports",
        "adapters",
        "memory",
        "max_sentences",
        "prior_weight",
    ):
        value = step.keys.get(key)
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        found += [(key, v) for v in values if isinstance(v, str) and v.startswith("@")]
    return found


def adapter_folder(recipe: Recipe, folder: str) -> Path:
    """A stage folder a recipe names by path (a candidate a ship step wrote, say): relative to the
    recipe file, as its data_dir is."""
    return recipe.path.parent / folder


def inputs(step: Step, recipe: Recipe) -> dict[str, Path]:
    """What a step reads from outside the run, by the name its report gives it: the files of the
    data directory (relative to it) and the files of stage folders named by path (under the
    folder as the recipe writes it). Earlier steps' outputs are not here: their hashes are."""
    keys, data = step.keys, recipe.data_dir
    found: dict[str, Path] = {}
    if data is not None:
        names = [n for n in keys.get("data", []) + keys.get("student_rationales", []) + keys.get("facts", []) if not n.startswith("@")]
        names += picked_files(step) if step.kind == "pick" else []
        splits = list(keys.get("questions", [])) if step.kind == "train" else []
        if (
            step.kind in ("pick", "sample", "eval", "retrieve")
            and isinstance(keys.get("questions"), str)
            and not keys["questions"].startswith("@")
        ):
            splits.append(keys["questions"])
        if step.kind in ("eval", "retrieve") and "dataset" in keys:
            splits.append(f"{keys['dataset']}/{keys['split']}")
        files = [data / n for n in names] + [split_path(data, *name.split("/")) for name in splits]
        files += rationale_files(data, keys["sources"]) if keys.get("sources") else []
        found |= {p.relative_to(data).as_posix(): p for p in files}
    adapters = keys.get("adapters")
    for folder in adapters.values() if isinstance(adapters, dict) else []:
        if not folder.startswith("@"):
            path = adapter_folder(recipe, folder)
            found |= {f"{folder.rstrip('/')}/{name}": path / name for name in ADAPTER_FILES if (path / name).is_file()}
    return found


def step_hash(step: Step, recipe: Recipe, done: dict[str, str]) -> str:
    """What a step's output depends on: its kind and keys, the contents of the files it reads
    (`inputs`; not where they are: a run carried to another machine goes on there), and the hashes of the
    steps it reads (`done`); a change to any of them makes the step run again."""
    keys = {k: v for k, v in step.keys.items() if k != "about"}  # words about a step change nothing it makes
    read = {name: file_sha256(p) for name, p in inputs(step, recipe).items()}
    body = {"kind": step.kind, "keys": keys, "data": read, "needs": {n: done[n] for n in step.needs}}
    if step.kind == "memory":
        body["facts_version"] = FACTS_VERSION  # facts cut another way make another memory
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read once while it is unchanged (steps share their data files)."""
    return _cached_sha256(Path(path), Path(path).stat().st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _cached_sha256(path: Path, mtime_ns: int) -> str:
    return sha256(path)
