"""Literal pre-filter: skip the rules an event cannot match, found in one pass per field.

`necessary(tree)` derives from a rule's condition a set of (field, text) pairs of which at least
one must occur (the field's lower-cased value contains the text) for the rule to match:

- a field test gives its longest literal piece (`CommandLine|contains: ' -ma '` → ' -ma ';
  `Image|endswith: '\\procdump.exe'` → '\\procdump.exe'; a wildcard pattern → its longest
  plain part; a number → its decimal text; a keyword → its text in any field);
- `or` (and `1 of`, modifier expansions such as `windash`) needs one of its branches: the union;
- `and` needs every child: any one child's set is necessary, and the most selective is kept
  (longest shortest text, then fewest pairs);
- a regular expression gives its longest top-level literal run (3 characters at least);
- `not`, `cidr`, comparisons, `exists`, null and field references give
  nothing: a rule whose condition yields nothing is always evaluated.

The pre-filter never changes what matches (the full matcher still decides); it only makes the
candidate list short. Values are scanned exactly as matchers read them (`FieldView.get`, every
alternative of a `%%` token), so a text the matcher can see, the automaton sees.
"""

from __future__ import annotations

import re._constants as _constants
import re._parser as _parser

import ahocorasick
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
)

Need = frozenset[tuple[str, str]] | None
ANY_FIELD = "*"  # keywords: the text may be in any field


def _regex_literal(pattern: str) -> str:
    """The longest literal run at the top level of a regular expression ('' if none).

    Every match contains the top-level literal characters in sequence, so the lower-cased run
    is inside the lower-cased value of any match (flags such as `i` do not change that).
    """
    try:
        parsed = _parser.parse(pattern)
    except Exception:  # noqa: BLE001 - an odd pattern simply gets no pre-filter
        return ""
    best, run = "", []
    for op, argument in [*parsed, (None, None)]:
        if op is _constants.LITERAL:
            run.append(chr(argument))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    return best.lower()


def _value_need(name: str, value) -> Need:
    if isinstance(value, SigmaRegularExpression):
        text = _regex_literal(value.regexp.to_plain())
        return frozenset({(name, text)}) if len(text.strip()) >= 3 else None
    if isinstance(value, SigmaExpansion):
        found: set[tuple[str, str]] = set()
        for item in value.values:
            need = _value_need(name, item)
            if need is None:
                return None
            found |= need
        return frozenset(found)
    if isinstance(value, SigmaString):  # SigmaCasedString too: lower-case text is still inside
        if value.contains_placeholder():
            return None
        pieces = [part for part in value.s if isinstance(part, str)]
        longest = max(pieces, key=len, default="").lower()
        return frozenset({(name, longest)}) if longest.strip() else None
    if isinstance(value, SigmaBool):
        return frozenset({(name, "true" if value.boolean else "false")})
    if isinstance(value, SigmaNumber):
        return frozenset({(name, str(value.number).lower())})
    return None


def _score(need: frozenset[tuple[str, str]]) -> tuple[int, int]:
    return (min(len(text) for _, text in need), -len(need))


def necessary(node) -> Need:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _value_need(node.field.lower(), node.value)
    if isinstance(node, ConditionValueExpression):  # a keyword: any field, all values joined
        return _value_need(ANY_FIELD, node.value)
    if isinstance(node, ConditionOR):
        found: set[tuple[str, str]] = set()
        for arg in node.args:
            need = necessary(arg)
            if need is None:
                return None
            found |= need
        return frozenset(found)
    if isinstance(node, ConditionAND):
        options = [need for need in map(necessary, node.args) if need]
        if not options:
            return None
        return max(options, key=_score)
    return None


class Bucket:
    """The rules of one (channel, event id) with one automaton per field over their texts."""

    def __init__(self, rules: list) -> None:
        self.rules = rules
        self.always: list[int] = []
        words: dict[str, dict[str, list[int]]] = {}
        for index, rule in enumerate(rules):
            need = getattr(rule, "needs", None)
            if not need:
                self.always.append(index)
                continue
            for name, text in need:
                words.setdefault(name, {}).setdefault(text, []).append(index)
        self.automata: list[tuple[str, ahocorasick.Automaton]] = []
        for name, texts in words.items():
            automaton = ahocorasick.Automaton()
            for text, indexes in texts.items():
                automaton.add_word(text, tuple(indexes))
            automaton.make_automaton()
            self.automata.append((name, automaton))

    def candidates(self, view) -> list:
        if not self.automata:
            return self.rules
        hits = set(self.always)
        for name, automaton in self.automata:
            values = (view.all_text(),) if name == ANY_FIELD else view.get(name)
            if values is None:
                continue
            for value in values:
                for _, indexes in automaton.iter(value):
                    hits.update(indexes)
        rules = self.rules
        return [rules[i] for i in sorted(hits)]
