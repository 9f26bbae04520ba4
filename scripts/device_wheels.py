"""The packages a lent GPU machine must be carried for this project's run-time packages to import
there, pinned to the versions in this virtual environment: ROOTS and everything they require,
transitively (extras left out, markers read for the device's Linux and Python 3.12), but for
what the device image holds in versions that work (DEVICE_HAS: PyTorch and the CUDA stack that
comes with it, and small libraries any version of which serves). Prints one `name==version` a
line, for `pip download` in scripts/device_kit.sh.

    .venv/bin/python scripts/device_wheels.py

A package the image also holds is carried when this project needs a newer one than the image's
(transformers 5.25 needs huggingface-hub >= 2.4, and the image had 1.33), which is why the walk
carries everything it is not told the image has.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

ROOTS = ["transformers", "peft", "accelerate", "gguf", "platformdirs"]
# Held by the device image (docs/gpu_runs.md; the image's package list in the device notes), in
# versions these requirements accept, or too big to carry (torch): not carried.
DEVICE_HAS = {
    "torch",
    "numpy",
    "pyyaml",
    "packaging",
    "tqdm",
    "filelock",
    "fsspec",
    "typing-extensions",
    "psutil",
    "requests",
    "urllib3",
    "certifi",
    "charset-normalizer",
    "safetensors",
    "tokenizers",
    "typer",
    "h11",
}
DEVICE = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "python_version": "3.12"}


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def closure(roots: list[str], device_has: set[str] = DEVICE_HAS) -> dict[str, str]:
    """Every package to carry, by normalised name, with this environment's version of it."""
    found: dict[str, str] = {}
    todo = [_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in device_has:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"{name} is required but not installed here: run `make install` first, then this again.") from None
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(DEVICE | {"extra": ""}):
                todo.append(_name(req.name))
    return dict(sorted(found.items()))


if __name__ == "__main__":
    pins = closure(sys.argv[1:] or ROOTS)
    print("\n".join(f"{name}=={version}" for name, version in pins.items()))
