"""The hunting query language (KQL-like) → a Django `Q` over `SecurityEvent`.

    computer:dc-01 AND NOT user_name:svc_*          stored fields, wildcards, NOT
    TargetUserName:administrator LogonType:3        raw Windows fields by name (implicit AND)
    CommandLine:*mimikatz* OR "lsass dump"          wildcards, quoted phrases, OR
    severity>=4 event_code:(4624 OR 4625)           comparisons, a field over a value group
    mimikatz                                        a bare word: message and every raw value

How it is built, so that it stays portable (SQLite, PostgreSQL, SQL Server) and fast:
1. `tokenize` and the recursive-descent `_Parser` turn the text into a small tree (`Term`,
   `Not`, `And`, `Or`); a syntax error is a `QuerySyntaxError` carrying the 0-based character
   offset where the parser gave up.
2. `compile_query` turns the tree into ORM expressions only: `LOWER(column) = value` or `LIKE`
   on stored columns, JSON key lookups (`KeyTextTransform`) on `raw`, and `LIKE` on
   `search_text`, the lowercase list of every value of the event filled at ingestion
   (`build_search_text`). Both sides are lowercased, so matching is case-insensitive whatever
   the database's collation, and `LIKE ... ESCAPE '\\'` means the same on all three databases.
3. A raw-field term is also ANDed with a condition an index answers, which never changes the
   result: `search_text LIKE` on the same value (every value of a record is a line of its
   search text; PostgreSQL trigram index), or for a whole number, JSON containment where the
   database supports it (PostgreSQL, jsonb_path_ops GIN index). On PostgreSQL a field of
   `INDEXED_RAW_FIELDS` is narrowed instead by its own trigram index
   (`lower(raw->>'CommandLine') LIKE ...`, migration 0007): `CommandLine:*powershell*` then
   reads only the events whose CommandLine has the word, not every event with the word
   anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection as db_connection
from django.db.models import F, Lookup, Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce, Lower

TEXT_FIELDS = ("computer", "user_name", "source_ip", "source_type")
NUMBER_FIELDS = ("event_code", "severity")
# Stored columns a query may name; any other name is a field of the raw record.
STORED_FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, "message", "agent")
FIELD_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_.@\-]*")
COMPARISON = re.compile(r"([A-Za-z_@][A-Za-z0-9_.@\-]*)(>=|<=|>|<)(.*)", re.DOTALL)
KEYWORDS = {"AND", "OR", "NOT"}
INTEGER = re.compile(r"-?[0-9]{1,18}")
MAX_QUERY_LENGTH = 4000
MAX_DEPTH = 40
# Where a raw field is looked for, by record shape (events.normalize.detect_shape), first found
# first: the top level (flat: the reference agent, import_events), Winlogbeat's
# `winlog.event_data`, and evtx's `EventData` with named keys (evtx_dump's JSON) under `Event` or
# at the top. `events.normalize.event_fields` flattens the same places (docs/investigation.md).
RAW_FIELD_PATHS = ((), ("winlog", "event_data"), ("Event", "EventData"), ("EventData",))
# Raw fields with a trigram index of their own on PostgreSQL (migration 0007 creates exactly
# these; adding one means a migration too). Others are narrowed by `search_text`.
INDEXED_RAW_FIELDS = (
    "CommandLine",
    "ParentCommandLine",
    "Image",
    "ParentImage",
    "TargetFilename",
    "TargetUserName",
)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class QuerySyntaxError(ValueError):
    """A query that cannot be read; `str()` is "<reason> at position N" (0-based offset)."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at position {position}")
        self.reason = reason
        self.position = position


# --- tokens -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # WORD, PHRASE, LPAREN, RPAREN, AND, OR, NOT, END
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    """Words, "phrases" (`\\"` and `\\\\` escaped inside), parentheses, AND/OR/NOT (any case)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(Token("LPAREN" if char == "(" else "RPAREN", char, i))
            i += 1
        elif char == '"':
            start, i = i, i + 1
            parts: list[str] = []
            while True:
                if i >= n:
                    raise QuerySyntaxError("Unterminated quoted phrase", start)
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    parts.append(text[i + 1])
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    parts.append(text[i])
                    i += 1
            tokens.append(Token("PHRASE", "".join(parts), start))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '()"':
                i += 1
            word = text[start:i]
            upper = word.upper()
            tokens.append(Token(upper if upper in KEYWORDS else "WORD", word, start))
    tokens.append(Token("END", "", n))
    return tokens


# --- the tree ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    field: str | None  # None: a bare word or phrase (message and every raw value)
    op: str  # ":" or a comparison
    value: str
    phrase: bool  # quoted: `*` is a literal star
    position: int


@dataclass(frozen=True)
class Not:
    node: Any


@dataclass(frozen=True)
class And:
    nodes: tuple


@dataclass(frozen=True)
class Or:
    nodes: tuple


class _Parser:
    """query := or ; or := and (OR and)* ; and := not ([AND] not)* ; not := NOT not | primary ;
    primary := "(" or ")" | term. Inside `field:( ... )` a WORD or PHRASE is a value of field."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self):
        if self.current.kind == "END":
            return None
        node = self.or_expr(None)
        if self.current.kind == "RPAREN":
            raise QuerySyntaxError("Unexpected ')'", self.current.position)
        if self.current.kind != "END":  # pragma: no cover - or_expr consumes all else
            raise QuerySyntaxError(f"Unexpected {self.current.text!r}", self.current.position)
        return node

    def or_expr(self, field):
        nodes = [self.and_expr(field)]
        while self.current.kind == "OR":
            self.take()
            nodes.append(self.and_expr(field))
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def and_expr(self, field):
        nodes = [self.not_expr(field)]
        while self.current.kind not in {"OR", "RPAREN", "END"}:
            if self.current.kind == "AND":
                self.take()
            nodes.append(self.not_expr(field))
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def not_expr(self, field):
        if self.current.kind == "NOT":
            self.take()
            return Not(self.nested(lambda: self.not_expr(field)))
        return self.primary(field)

    def nested(self, parse):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError("Query nested too deeply", self.current.position)
        try:
            return parse()
        finally:
            self.depth -= 1

    def primary(self, field):
        token = self.current
        if token.kind == "LPAREN":
            self.take()
            if self.current.kind == "RPAREN":
                raise QuerySyntaxError("Empty parentheses", token.position)
            node = self.nested(lambda: self.or_expr(field))
            if self.current.kind != "RPAREN":
                raise QuerySyntaxError("Missing ')' for the '(' opened", token.position)
            self.take()
            return node
        if token.kind == "PHRASE":
            self.take()
            return Term(field, ":", token.text, True, token.position)
        if token.kind == "WORD":
            self.take()
            if field is not None:
                return Term(field, ":", token.text, False, token.position)
            return self.word_term(token)
        if token.kind == "END":
            raise QuerySyntaxError("Expected a search term", token.position)
        raise QuerySyntaxError(f"Unexpected {token.text!r}", token.position)

    def word_term(self, token: Token):
        word = token.text
        name, colon, rest = word.partition(":")
        if colon and FIELD_NAME.fullmatch(name):
            value_position = token.position + len(name) + 1
            if rest:
                return Term(name, ":", rest, False, value_position)
            return self.field_value(name, value_position)
        if colon and not name:
            raise QuerySyntaxError("Expected a field name before ':'", token.position)
        compared = COMPARISON.fullmatch(word)
        if compared:
            name, op, value = compared.groups()
            value_position = token.position + len(name) + len(op)
            if not value:
                after = self.current
                if after.kind != "WORD":
                    raise QuerySyntaxError(f"Expected a number after '{name}{op}'", after.position)
                self.take()
                value, value_position = after.text, after.position
            return Term(name, op, value, False, value_position)
        return Term(None, ":", word, False, token.position)

    def field_value(self, name: str, position: int):
        token = self.current
        if token.kind in {"WORD", "PHRASE"}:
            self.take()
            return Term(name, ":", token.text, token.kind == "PHRASE", token.position)
        if token.kind == "LPAREN":
            return self.nested(lambda: self.primary(name))
        raise QuerySyntaxError(f"Expected a value after '{name}:'", token.position)


def parse(text: str):
    """The tree of `text` (None for an empty query); QuerySyntaxError if it cannot be read."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"Query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    return _Parser(tokenize(text)).parse()


# --- SQL --------------------------------------------------------------------------------------
class _Plain(Lookup):
    """`lhs <operator> rhs` exactly as written, with no JSON-aware rewriting of either side
    (Django's own lookups on a JSON key would read the value as a JSON document on SQLite)."""

    prepare_rhs = False
    sql = ""

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return self.sql.format(lhs=lhs, rhs=rhs), (*lhs_params, *rhs_params)


class Like(_Plain):
    """`lhs LIKE pattern ESCAPE '\\'`: one spelling that PostgreSQL, SQLite and SQL Server
    read alike (patterns are built by `_pattern`, which escapes `\\ % _ [`)."""

    lookup_name = "siem_like"
    sql = "{lhs} LIKE {rhs} ESCAPE '\\'"


class Equals(_Plain):
    lookup_name = "siem_equals"
    sql = "{lhs} = {rhs}"


def _escape_like(text: str) -> str:
    return re.sub(r"([\\%_\[])", r"\\\1", text)


def _wildcard_parts(term: Term) -> list[str]:
    """The literal pieces between `*` wildcards (one piece: no wildcard). A backslash is just a
    backslash (Windows paths: `C:\\Tools\\*`); a literal star needs quotes."""
    return [term.value] if term.phrase else term.value.split("*")


def search_line(value: Any) -> str:
    """A value as it is written in `search_text`: text, lowercase, on one line."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    return " ".join(text.lower().splitlines()).replace("\t", " ")


def build_search_text(stored: Mapping[str, Any], raw_fields: Mapping[str, Any]) -> str:
    """Every value of an event, one lowercase line each, between newlines ("\\nv1\\nv2\\n").

    Bare words search it with `LIKE '%word%'`; a raw field's exact value `v` is always the line
    `\\nv\\n`, which is what the index narrows a raw-field term to before the JSON check.
    """
    lines: dict[str, None] = {}
    for name in ("message", "computer", "user_name", "source_ip", "source_type"):
        value = stored.get(name)
        if value:
            lines[search_line(value)] = None
    for value in _leaves(raw_fields.values()):
        line = search_line(value)
        if line:
            lines[line] = None
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def _leaves(values: Iterable[Any]) -> Iterable[Any]:
    stack = list(values)[::-1]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(list(value.values())[::-1])
        elif isinstance(value, list):
            stack.extend(value[::-1])
        elif value is not None:
            yield value


def compile_query(text: str) -> Q:
    """A `Q` for `SecurityEvent` that selects what `text` asks for (all events if empty)."""
    tree = parse(text or "")
    return Q() if tree is None else _compile(tree)


def _compile(node) -> Q:
    if isinstance(node, Term):
        return _term(node)
    if isinstance(node, Not):
        return ~_compile(node.node)
    children = [_compile(child) for child in node.nodes]
    result = children[0]
    for child in children[1:]:
        result = (result | child) if isinstance(node, Or) else (result & child)
    return result


def _q(lookup: Lookup) -> Q:
    return Q(lookup)


def _pattern(parts: list[str], *, contains: bool = False) -> str:
    body = "%".join(_escape_like(search_line(part)) for part in parts)
    return f"%{body}%" if contains else body


def _text_match(expression, term: Term, *, contains: bool = False) -> Q:
    parts = _wildcard_parts(term)
    if len(parts) == 1 and not contains:
        return _q(Equals(expression, Value(search_line(parts[0]))))
    return _q(Like(expression, Value(_pattern(parts, contains=contains))))


def _search_text_hint(term: Term) -> Q:
    """`search_text LIKE ...`: true for every event whose raw record has this value."""
    parts = _wildcard_parts(term)
    if len(parts) == 1:
        pattern = f"%\n{_escape_like(search_line(parts[0]))}\n%"
    else:
        # Anchor at a line edge only where the value has no wildcard at that end.
        head = "\n" if parts[0] else ""
        tail = "\n" if parts[-1] else ""
        pattern = f"%{head}{_pattern(parts)}{tail}%"
    return _q(Like(F("search_text"), Value(pattern)))


def _number(term: Term) -> int:
    try:
        value = int(term.value)
    except ValueError:
        raise QuerySyntaxError(
            f"{term.field} takes a whole number, not {term.value!r}", term.position
        ) from None
    if not INT_MIN <= value <= INT_MAX:
        raise QuerySyntaxError(f"{term.value} is out of range", term.position)
    return value


COMPARE_LOOKUPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}


def _term(term: Term) -> Q:
    name = term.field
    if name is None:
        return _q(Like(F("search_text"), Value(_pattern(_wildcard_parts(term), contains=True))))
    if term.op != ":":
        if name not in NUMBER_FIELDS:
            raise QuerySyntaxError(
                f"'{term.op}' compares numbers: use it with {' or '.join(NUMBER_FIELDS)}",
                term.position,
            )
        return Q(**{f"{name}__{COMPARE_LOOKUPS[term.op]}": _number(term)})
    exists = not term.phrase and term.value == "*"
    if name in NUMBER_FIELDS:
        if exists:
            return Q()
        if "*" in term.value and not term.phrase:
            raise QuerySyntaxError(f"{name} takes a whole number, not a pattern", term.position)
        return Q(**{name: _number(term)})
    if name in TEXT_FIELDS:
        return ~Q(**{name: ""}) if exists else _text_match(Lower(F(name)), term)
    if name == "message":
        if exists:
            return ~Q(message="")
        return _text_match(Lower(F("message")), term, contains=True) & _q(
            Like(F("search_text"), Value(_pattern(_wildcard_parts(term), contains=True)))
        )
    if name == "agent":
        if exists:
            return Q(agent__isnull=False)
        return Q(agent__isnull=False) & _text_match(Lower(F("agent__hostname")), term)
    # A field of the raw Windows record (its name as the record spells it).
    if exists:
        return raw_field_exists(name)
    value = Coalesce(Lower(raw_field(name)), Value(""), output_field=TextField())
    return (_field_index_hint(term) or _raw_hint(term)) & _text_match(value, term)


def _field_index_hint(term: Term) -> Q | None:
    """`LOWER(raw->>'CommandLine') LIKE pattern` for a field of `INDEXED_RAW_FIELDS` on
    PostgreSQL, which its expression index answers (None elsewhere). The exact check ANDed with
    it implies it: an event whose field matches has the field, and then the same pattern holds.
    Only for a value with some literal text (a pattern of wildcards alone would also match an
    event without the field, through the exact check's COALESCE to '')."""
    if term.field not in INDEXED_RAW_FIELDS or db_connection.vendor != "postgresql":
        return None
    parts = _wildcard_parts(term)
    if not any(parts):
        return None
    return _q(Like(Lower(raw_field(term.field)), Value(_pattern(parts))))


def _raw_hint(term: Term) -> Q:
    """A condition true for every event whose raw `term.field` matches `term`, that an index
    answers. A whole number is looked up by JSON containment where the database has it
    (`raw @> '{"LogonType": 3}'`, jsonb_path_ops GIN on PostgreSQL), because one digit has no
    trigrams to narrow `search_text` with; the number or its string form covers both spellings."""
    value = term.value
    if (
        not term.phrase
        and INTEGER.fullmatch(value)
        and db_connection.features.supports_json_field_contains
    ):
        condition = Q()
        for path in RAW_FIELD_PATHS:
            for number in (int(value), value):
                nested: Any = {term.field: number}
                for key in reversed(path):
                    nested = {key: nested}
                condition |= Q(raw__contains=nested)
        return condition
    return _search_text_hint(term)


def _json_path(path: tuple[str, ...]):
    node: Any = "raw"
    for key in path:
        node = KeyTransform(key, node)
    return node


def raw_field(name: str) -> Coalesce:
    """The text of raw field `name` wherever the record's shape keeps it (`RAW_FIELD_PATHS`),
    NULL if it has none: `COALESCE(raw->>'F', raw#>>'{winlog,event_data,F}', …)` on PostgreSQL,
    JSON_EXTRACT paths on SQLite, JSON_VALUE on SQL Server. Migration 0007 indexes exactly this
    expression (lowercased) for `INDEXED_RAW_FIELDS`."""
    return Coalesce(
        *(KeyTextTransform(name, _json_path(path)) for path in RAW_FIELD_PATHS),
        output_field=TextField(),
    )


def raw_field_exists(name: str) -> Q:
    """The record has field `name` in one of `RAW_FIELD_PATHS` (with any value, null included)."""
    condition = Q()
    for path in RAW_FIELD_PATHS:
        condition |= Q(**{"__".join(("raw", *path, "has_key")): name})
    return condition
