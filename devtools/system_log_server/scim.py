"""The SCIM filter subset of ``/api/v1/logs?filter=``: a small recursive-descent parser.

Grammar (keywords and operators are case-insensitive)::

    expr    := conj ("or" conj)*
    conj    := unary ("and" unary)*
    unary   := "not" "(" expr ")" | "(" expr ")" | attrPath "pr" | attrPath OP "string"
    OP      := eq | ne | co | sw | ew | gt | ge | lt | le

An attribute path is dotted (``actor.alternateId``); a step through an array
(``target.id``) fans out, and a comparison holds when ANY reached value
satisfies it, so a missing or null attribute matches nothing, not even
``ne``. Values compare as strings (JSON booleans and numbers by their JSON
text). Like Okta, ``published`` cannot be filtered on and ``co`` is refused
on the debug URL fields.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "co": operator.contains,
    "sw": str.startswith,
    "ew": str.endswith,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_NO_CONTAINS = ("debugContext.debugData.url", "debugContext.debugData.requestUri")
_TOKEN = re.compile(r'\s*(?:(?P<paren>[()])|"(?P<string>(?:[^"\\]|\\.)*)"|(?P<word>[^\s()"]+)|(?P<bad>\S))')
_PATH = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_ESCAPE = re.compile(r"\\(.)")


class FilterError(ValueError):
    """The filter is not valid; the message says where, in Okta's style."""


@dataclass(frozen=True)
class Filter:
    """A parsed filter: ``matches(event)`` and the attribute paths it reads."""

    text: str
    paths: frozenset[tuple[str, ...]]
    test: Callable[[dict], bool]

    def matches(self, event: dict) -> bool:
        return self.test(event)


def parse_filter(text: str) -> Filter:
    parser = _Parser(text)
    test = parser.expression()
    if parser.peek() is not None:
        raise parser.error(f"Unexpected '{parser.peek()[1]}'")
    return Filter(text, frozenset(parser.paths), test)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = list(_tokens(text))
        self.index = 0
        self.paths: set[tuple[str, ...]] = set()

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise self.error("Unexpected end of filter")
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() in words:
            self.index += 1
            return True
        return False

    def expect_paren(self, paren: str) -> None:
        token = self.take()
        if token[:2] != ("paren", paren):
            raise self.error(f"Expected '{paren}'", token)

    def error(self, message: str, token: tuple[str, str, int] | None = None) -> FilterError:
        position = token[2] if token else len(self.text)
        return FilterError(f"Invalid filter '{self.text}': {message} at position {position}.")

    def expression(self) -> Callable[[dict], bool]:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda event: any(term(event) for term in terms))

    def conjunction(self) -> Callable[[dict], bool]:
        factors = [self.unary()]
        while self.keyword("and"):
            factors.append(self.unary())
        return factors[0] if len(factors) == 1 else (lambda event: all(f(event) for f in factors))

    def unary(self) -> Callable[[dict], bool]:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() == "not" and self._next_is_paren():
            self.index += 1
            inner = self.group()
            return lambda event: not inner(event)
        if token and token[:2] == ("paren", "("):
            return self.group()
        return self.comparison()

    def _next_is_paren(self) -> bool:
        return self.index + 1 < len(self.tokens) and self.tokens[self.index + 1][:2] == ("paren", "(")

    def group(self) -> Callable[[dict], bool]:
        self.expect_paren("(")
        inner = self.expression()
        self.expect_paren(")")
        return inner

    def comparison(self) -> Callable[[dict], bool]:
        token = self.take()
        if token[0] != "word" or not _PATH.fullmatch(token[1]):
            raise self.error(f"Expected an attribute path, got '{token[1]}'", token)
        path = tuple(token[1].split("."))
        if path[0] == "published":
            raise FilterError("Invalid filter: the published attribute cannot be filtered on; use since and until.")
        self.paths.add(path)
        op_token = self.take()
        op = op_token[1].lower()
        if op_token[0] == "word" and op == "pr":
            return lambda event: any(value not in ("", {}) for value in _values(event, path))
        if op_token[0] != "word" or op not in OPERATORS:
            raise self.error(f"Unrecognized attribute operator '{op_token[1]}'. Expected: pr,"
                             + ",".join(OPERATORS), op_token)
        if op == "co" and token[1] in _NO_CONTAINS:
            raise FilterError("The supplied combination of operator and field is not currently supported. "
                              f"Operator: co, Field: {token[1]}")
        value_token = self.take()
        if value_token[0] != "string":
            raise self.error(f"Expected a double-quoted value, got '{value_token[1]}'", value_token)
        compare, expected = OPERATORS[op], _ESCAPE.sub(r"\1", value_token[1])
        return lambda event: any(compare(text, expected) for text in _texts(event, path))


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing whitespace is left
            return
        kind = match.lastgroup
        if kind == "bad":
            raise FilterError(f"Invalid filter '{text}': unterminated string at position {match.start(kind)}.")
        yield kind, match.group(kind), match.start(kind)
        position = match.end()


def _values(node, path: tuple[str, ...]) -> Iterator:
    """Every non-null value at ``path``, fanning out through arrays."""
    if isinstance(node, list):
        for item in node:
            yield from _values(item, path)
    elif not path:
        if node is not None:
            yield node
    elif isinstance(node, dict):
        yield from _values(node.get(path[0]), path[1:])


def _texts(event: dict, path: tuple[str, ...]) -> Iterator[str]:
    for value in _values(event, path):
        if isinstance(value, str):
            yield value
        elif not isinstance(value, dict):
            yield orjson.dumps(value).decode()
