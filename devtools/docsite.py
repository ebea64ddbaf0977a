"""MkDocs hooks of the docs site (``mkdocs.yml`` ``hooks:``): pages may link repository files outside ``docs/``.

A page links ``../bench/RESULTS.md`` or ``../monitoring/alerts.yml`` the way GitHub shows them, relative to
where the page lies in the repository. MkDocs only knows files under ``docs/``, so these hooks add every such
target to the site under ``repository/<its path>`` (a Markdown file becomes a page outside the nav, any other
file is copied as it is), transitively for the Markdown files added, and rewrite the links to point there.
A link to a file the repository does not hold stops the build, as MkDocs' strict mode does for a broken link
between pages. Self-contained: MkDocs loads this file by path, not as part of the project's packages.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, InclusionLevel

SITE_FOLDER = "repository"
LINK = re.compile(r"(!?\[[^\]\n]*\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^\s*(```|~~~)")
_ROOTS: dict[str, Path] = {}  # "docs", "repository": the folders, set by on_files


def outside_prose(markdown: str):
    """(line index, line) of every line outside fenced code blocks."""
    fenced = False
    for index, line in enumerate(markdown.split("\n")):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield index, line


def repository_target(page_source: Path, link: str) -> Path | None:
    """The repository file a relative link of a page points to, or None for URLs, anchors and absolute paths."""
    if not link or link.startswith(("#", "/")) or re.match(r"^[a-z][a-z0-9+.-]*:", link):
        return None
    path = link.split("#", 1)[0].split("?", 1)[0]
    return (page_source.parent / path).resolve() if path else None


def site_path(target: Path) -> str:
    """Where a repository file is in the site: its path under docs/, or under ``repository/``."""
    docs, repository = _ROOTS["docs"], _ROOTS["repository"]
    if target.is_relative_to(docs):
        return target.relative_to(docs).as_posix()
    return f"{SITE_FOLDER}/{target.relative_to(repository).as_posix()}"


def on_files(files, config):
    docs = Path(config.docs_dir).resolve()
    repository = Path(config.config_file_path).resolve().parent
    _ROOTS.update(docs=docs, repository=repository)
    pending = [Path(page.abs_src_path) for page in files.documentation_pages()]
    added: set[Path] = set()
    while pending:
        source = pending.pop()
        for _, line in outside_prose(source.read_text()):
            for match in LINK.finditer(line):
                target = repository_target(source, match.group(2))
                if target is None or target.is_relative_to(docs) or target in added:
                    continue
                if not target.is_relative_to(repository) or not target.is_file():
                    raise PluginError(f"{source.relative_to(repository)} links {match.group(2)}, "
                                      "which is no file of the repository")
                added.add(target)
                files.append(File.generated(config, site_path(target), abs_src_path=str(target),
                                            inclusion=InclusionLevel.NOT_IN_NAV))
                if target.suffix == ".md":
                    pending.append(target)
    return files


def on_page_markdown(markdown, page, config, files):
    source = Path(page.file.abs_src_path)
    here = posixpath.dirname(page.file.src_uri)
    lines = markdown.split("\n")

    def rewrite(match: re.Match) -> str:
        link = match.group(2)
        target = repository_target(source, link)
        if target is None or not target.is_relative_to(_ROOTS["repository"]):
            return match.group(0)
        anchor = "#" + link.split("#", 1)[1] if "#" in link else ""
        relative = posixpath.relpath(site_path(target), here or ".")
        return f"{match.group(1)}{relative}{anchor}{match.group(3)}"

    for index, line in outside_prose(markdown):
        lines[index] = LINK.sub(rewrite, line)
    return "\n".join(lines)
