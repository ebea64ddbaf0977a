"""The layering the code relies on (docs/ARCHITECTURE.md): who may import whom, and no private names across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "okta_client", "transforms", "sinks", "sources", "streaming", "pipeline")

# The Beam-free modules of sources/ and sinks/ that the streaming core may use.
BEAM_FREE = {"sources.okta_config", "sources.okta_state", "sources.okta_polling", "sources.pubsub_messages",
             "sinks.fs", "sinks.lake_files", "sinks.window_commit", "sinks.bigquery", "sinks.run_records",
             "sinks.iceberg_catalog", "sinks.iceberg_table", "sinks.iceberg_windows",
             "sinks.iceberg_cursor"}
# Package -> the packages it may import (besides itself).
ALLOWED = {
    "schemas": set(),
    "okta_client": set(),
    "transforms": {"schemas"},
    "sinks": {"schemas", "transforms", "streaming"},  # streaming: only sinks.stream_lake, the Beam wrapper
    "sources": {"okta_client", "schemas", "transforms", "sinks", "streaming"},  # streaming: only okta_stream
    "streaming": {"okta_client", "schemas", "transforms", "sinks", "sources"},  # only BEAM_FREE modules
    "pipeline": {"okta_client", "schemas", "transforms", "sinks", "sources", "streaming"},
}
WRAPPERS = {"sinks.stream_lake", "sources.okta_stream"}  # Beam around the streaming core


def modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = f"{package}.{path.stem}" if path.stem != "__init__" else package
            yield name, ast.parse(path.read_text(), str(path))


def imports(tree):
    """(module imported, names imported from it) for every import statement, nested ones too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [alias.name for alias in node.names]


def project(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


@pytest.mark.parametrize("name,tree", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_follow_the_package_graph(name, tree):
    package = name.split(".")[0]
    for module, names in imports(tree):
        if not project(module):
            continue
        target = module.split(".")[0]
        if target == package:
            continue
        assert target in ALLOWED[package], f"{name} imports {module}"
        if package in ("sinks", "sources") and target == "streaming":
            assert name in WRAPPERS, f"{name} imports {module}: only the Beam wrappers use the streaming core"
        if package == "streaming" and target in ("sinks", "sources"):
            full = {module} | {f"{module}.{n}" for n in names}
            assert full & BEAM_FREE, f"{name} imports {module}: the streaming core uses Beam-free modules only"


@pytest.mark.parametrize("name,tree", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_no_private_name_is_imported_from_another_module(name, tree):
    for module, names in imports(tree):
        if project(module):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{name} imports {private} from {module}"


def test_the_streaming_core_builds_no_beam_graph():
    for name, tree in modules():
        if name.startswith("streaming"):
            for module, _ in imports(tree):
                assert module != "apache_beam" and not module.startswith("apache_beam."), f"{name} imports {module}"


def test_no_source_imports_a_sinks_beam_module():
    for name, tree in modules():
        if name.startswith("sources"):
            for module, names in imports(tree):
                full = {module} | {f"{module}.{n}" for n in names}
                assert not full & {"sinks.lake", "sinks.stream_lake"}, f"{name} imports {module}"


def test_the_image_and_the_package_carry_every_package():
    import re

    setup = (ROOT / "setup.py").read_text()
    docker = (ROOT / "Dockerfile").read_text()
    for package in PACKAGES:
        assert f'"{package}"' in setup, f"setup.py does not package {package}/"
        assert re.search(rf"^COPY {package} {package}$", docker, re.M), f"the Dockerfile does not copy {package}/"


def _module_level_imports(tree) -> list[str]:
    """The modules a module imports when it is imported (not those imported inside its functions)."""
    found = []
    for node in tree.body:
        for inner in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(inner, ast.Import):
                found += [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                found += [inner.module] + [f"{inner.module}.{alias.name}" for alias in inner.names]
    return found


def test_the_early_decode_start_imports_no_beam():
    """pipeline.prestart runs before Beam is imported (to overlap Beam's import): nothing it loads imports Beam."""
    trees = dict(modules())
    seen, todo = set(), ["pipeline.prestart", "sources.range_worker"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module in _module_level_imports(trees[name]):
            assert module.split(".")[0] != "apache_beam", f"{name} imports {module} (loaded by pipeline.prestart)"
            parts = module.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in trees]
    assert {"pipeline.lake_flags", "sources.file_ranges", "sources.range_pool"} <= seen
