"""Deterministic generator of realistic Okta System Log events."""

from devtools.eventgen.generator import PERSONAL_TYPES, EventGenerator, export_lines, generated_events  # noqa: F401
