"""Which event types the pipeline keeps (pure Python, no Beam).

A selection is a comma-separated list of patterns: ``personal.*`` keeps every
type that starts with ``personal.`` (so future Okta Personal types flow in
without a release); a pattern without ``*`` keeps exactly that type. The same
selection becomes the SCIM filter pushed down to the System Log API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_EVENT_TYPES = "personal.*"

_PATTERN = re.compile(r"^([A-Za-z0-9_.\-]+\*?|\*)$")


@dataclass(frozen=True)
class EventTypeSelection:
    prefixes: tuple[str, ...]
    exact: frozenset[str]

    @classmethod
    def parse(cls, spec: str) -> EventTypeSelection:
        patterns = [p.strip() for p in (spec or "").split(",") if p.strip()]
        if not patterns:
            raise ValueError("--event_types must list at least one event type or prefix*")
        prefixes, exact = [], set()
        for pattern in patterns:
            if not _PATTERN.match(pattern):
                raise ValueError(
                    f"--event_types: {pattern!r} is not an event type (letters, digits, '.', '_', '-') "
                    "or a prefix ending in '*'"
                )
            if pattern.endswith("*"):
                prefixes.append(pattern[:-1])
            else:
                exact.add(pattern)
        return cls(tuple(prefixes), frozenset(exact))

    def __call__(self, event_type: str) -> bool:
        return event_type in self.exact or event_type.startswith(self.prefixes)

    def scim_filter(self) -> str:
        """The selection as an Okta System Log ``filter`` expression."""
        terms = [f'eventType sw "{p}"' for p in self.prefixes if p]
        terms += [f'eventType eq "{e}"' for e in sorted(self.exact)]
        if any(not p for p in self.prefixes):  # '*' alone: everything
            return ""
        return " or ".join(terms)

    def describe(self) -> str:
        return ",".join([p + "*" for p in self.prefixes] + sorted(self.exact))
