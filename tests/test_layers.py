"""The one-way data flow of the README's architecture map: no module imports from a layer above it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wavefast"

#: package -> the wavefast packages/modules it must never import (directly or lazily inside a function)
FORBIDDEN = {
    "schedules": {"runtime", "learn", "audio", "cli", "eval", "train", "vocoder", "pipeline"},
    "samplers": {"runtime", "learn", "audio", "cli", "eval", "train", "vocoder", "pipeline"},
    "runtime": {"learn", "cli", "train"},
    "models": {"cli", "learn", "runtime", "vocoder", "pipeline"},
}


def wavefast_imports(source: str, package_parts: tuple) -> set:
    """Top-level wavefast subpackages a module in ``wavefast/<package_parts>/`` imports (absolute ``wavefast.x``,
    relative ``..x`` / ``.x``, at top level or inside functions)."""
    tree = ast.parse(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("wavefast.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("wavefast."):
                    found.add(node.module.split(".")[1])
                continue
            base = list(package_parts[: len(package_parts) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            if target:
                found.add(target[0])
            else:  # "from .. import x": x are top-level names
                found |= {a.name for a in node.names}
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_from_a_layer_above(package):
    bad = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        hits = wavefast_imports(path.read_text(), path.relative_to(PACKAGE).parts[:-1]) & FORBIDDEN[package]
        if hits:
            bad[str(path.relative_to(PACKAGE))] = sorted(hits)
    assert not bad, bad


def test_the_checker_sees_relative_and_lazy_imports():
    source = "import wavefast.cli\ndef f():\n    from ..runtime.backends import TorchBackend\n    from . import plans\n"
    assert wavefast_imports(source, ("schedules",)) == {"cli", "runtime", "schedules"}
