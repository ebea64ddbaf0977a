"""The layering the code relies on (docs/ARCHITECTURE.md), as rules per folder, not lists of modules.

1. The installed packages form layers, lowest first (``LAYERS``); a module imports its own package or a
   lower one, never a higher one, and never the development tools, the benchmarks or the tests.
2. Inside ``sinks/`` and ``sources/`` each component folder (``sinks/lake``, ``sources/okta``, ...) may use
   another, but the folders never import each other in a cycle.
3. Beam lives in the Beam modules: only a module named ``beam.py`` and the run's wiring (``pipeline/``)
   import ``apache_beam`` (``storage/`` speaks to the stores with their own clients). Only those import a
   ``beam`` module, so every core is usable (and tested) without a runner.
4. No private name is imported from another module, and no module republishes a private name under a
   public one to get round that.
5. No module is longer than ``MAX_LINES``.
6. The tools (``tools/``) read what runs leave with the layers below the run's wiring: none imports
   ``pipeline`` but the command itself (``tools/cli.py``, whose ``run`` starts one).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("common", "schemas", "okta_client", "storage", "transforms", "sinks", "sources", "streaming", "pipeline",
          "tools")
NOT_INSTALLED = ("devtools", "bench", "tests")
BEAM_PACKAGES = ("pipeline",)  # besides every module named beam.py
COMPONENT_PACKAGES = ("sinks", "sources")
MAX_LINES = 400
RUN_STARTERS = ("tools.cli",)  # the only tools module that may import pipeline


def modules(packages=LAYERS):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path, ast.parse(path.read_text(), str(path))


MODULES = list(modules())
IDS = [name for name, _, _ in MODULES]


def imports(tree):
    """(module imported, names imported from it) for every import statement, nested ones too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [alias.name for alias in node.names]


def project(module: str) -> bool:
    return module.split(".")[0] in LAYERS + NOT_INSTALLED


def targets(module: str, names: list[str]) -> set[str]:
    """The project modules an import statement reaches (``from sinks.lake import beam`` reaches sinks.lake.beam)."""
    found = {module}
    for name in names:
        if (ROOT / Path(*module.split("."), f"{name}.py")).exists() or (ROOT / Path(*module.split("."), name)).is_dir():
            found.add(f"{module}.{name}")
    return found


def is_beam_module(name: str) -> bool:
    return name.split(".")[-1] == "beam" or name.split(".")[0] in BEAM_PACKAGES


@pytest.mark.parametrize("name,path,tree", MODULES, ids=IDS)
def test_imports_point_down_the_layers(name, path, tree):
    layer = LAYERS.index(name.split(".")[0])
    for module, _ in imports(tree):
        if not project(module):
            continue
        top = module.split(".")[0]
        assert top not in NOT_INSTALLED, f"{name} imports {module}: the installed code never uses the dev tools"
        assert LAYERS.index(top) <= layer, f"{name} imports {module}: {top}/ is above {name.split('.')[0]}/"


@pytest.mark.parametrize("name,path,tree", MODULES, ids=IDS)
def test_only_the_beam_modules_import_beam(name, path, tree):
    for module, names in imports(tree):
        if module.split(".")[0] == "apache_beam":
            assert is_beam_module(name), f"{name} imports {module}: Beam belongs in a beam.py module"
        elif project(module) and not is_beam_module(name):
            beam = [t for t in targets(module, names) if t.split(".")[-1] == "beam"]
            assert not beam, f"{name} imports {beam}: a Beam-free module cannot use a beam.py module"


def component(module: str) -> str:
    parts = module.split(".")
    if parts[0] in COMPONENT_PACKAGES and len(parts) > 1 and (ROOT / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def test_no_cycle_between_folders():
    edges = defaultdict(set)
    for name, _, tree in MODULES:
        for module, names in imports(tree):
            if project(module):
                for target in targets(module, names):
                    if component(target) != component(name):
                        edges[component(name)].add(component(target))
    visiting, done = [], set()

    def visit(node):
        if node in visiting:
            cycle = visiting[visiting.index(node):] + [node]
            pytest.fail("import cycle between folders: " + " -> ".join(cycle))
        if node in done:
            return
        visiting.append(node)
        for nxt in sorted(edges[node]):
            visit(nxt)
        visiting.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)
    assert {"sinks.lake", "sinks.iceberg", "sources.okta", "sources.files"} <= set(edges), "the folders moved"


@pytest.mark.parametrize("name,path,tree", MODULES, ids=IDS)
def test_no_private_name_crosses_a_module(name, path, tree):
    for module, names in imports(tree):
        if project(module):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{name} imports {private} from {module}"
    for node in tree.body:  # `helper = _helper`: a private name made public for another module
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id.startswith("_"):
            public = [t.id for t in node.targets if isinstance(t, ast.Name) and not t.id.startswith("_")]
            assert not public, f"{name} republishes {node.value.id} as {public}"


def test_the_tools_do_not_import_the_run():
    tools = [(name, tree) for name, _, tree in MODULES if name.split(".")[0] == "tools"]
    assert "tools.cli" in [name for name, _ in tools] and len(tools) > 3, "the tools moved"
    for name, tree in tools:
        if name not in RUN_STARTERS:
            wiring = [module for module, _ in imports(tree) if module.split(".")[0] == "pipeline"]
            assert not wiring, f"{name} imports {wiring}: a tool reads what runs leave, it does not use their wiring"


@pytest.mark.parametrize("name,path,tree", MODULES, ids=IDS)
def test_modules_stay_small(name, path, tree):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (split it along its seams)"


def test_the_image_and_the_package_carry_exactly_the_installed_packages():
    import re

    setup = (ROOT / "setup.py").read_text()
    docker = (ROOT / "Dockerfile").read_text()
    for package in LAYERS:
        assert f'"{package}"' in setup, f"setup.py does not package {package}/"
        assert re.search(rf"^COPY {package} {package}$", docker, re.M), f"the Dockerfile does not copy {package}/"
    for package in NOT_INSTALLED:
        assert f'"{package}"' not in setup, f"setup.py packages {package}/"
        assert not re.search(rf"^COPY {package}\b", docker, re.M), f"the Dockerfile copies {package}/"


def test_no_test_or_benchmark_hook_in_the_installed_code():
    for name, path, _ in MODULES:
        text = path.read_text()
        for marker in ("OKTA_PERSONAL_TEST_", "OKTA_PERSONAL_BENCH_"):
            assert marker not in text, f"{name} reads a test or benchmark hook ({marker}...)"
