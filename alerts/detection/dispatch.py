"""Which Sigma rules an event is tried against: its log, then the literals the rules need.

1. Dispatch by (channel, event id): each rule is filed under the logs of its logsource
   (logsource.py), so a Security 4625 never meets a process_creation rule, and an event costs
   nothing for the rules of other logs.
2. Pre-filter by literals: most rules cannot match unless some field contains some text (a
   `CommandLine|contains`, an `Image|endswith`). `prefilter.py` derives, per rule, such a
   necessary condition — "one of these (field, text) pairs occurs" — and per bucket builds one
   Aho-Corasick automaton per field over all its rules' texts: one pass over `CommandLine`
   finds every rule whose text it holds, instead of a thousand separate substring tests. Only
   those rules, plus the rules without such a condition, are evaluated.

So the cost of an event grows with the rules that can match it, not with the rule count.
"""

from __future__ import annotations

from alerts.detection.fields import FieldView
from alerts.detection.prefilter import Bucket
from alerts.detection.sigma import CompiledRule


class Dispatch:
    def __init__(self, rules: list[CompiledRule]) -> None:
        self.rules = rules
        self._by_pair: dict[tuple[str, int], list[CompiledRule]] = {}
        self._by_channel: dict[str, list[CompiledRule]] = {}
        self._by_code: dict[int, list[CompiledRule]] = {}
        self._any: list[CompiledRule] = []
        for rule in rules:
            for source in rule.sources:
                if source.channel is None and source.event_ids is None:
                    self._any.append(rule)
                elif source.event_ids is None:
                    self._by_channel.setdefault(source.channel, []).append(rule)
                elif source.channel is None:
                    for code in source.event_ids:
                        self._by_code.setdefault(code, []).append(rule)
                else:
                    for code in source.event_ids:
                        self._by_pair.setdefault((source.channel, code), []).append(rule)
        self._codes = {code for _, code in self._by_pair} | set(self._by_code)
        self._any_code = bool(self._any or self._by_channel)
        self._buckets: dict[tuple[str, int | None], Bucket] = {}
        for channel, code in self._by_pair:  # automata built at load time, not on first event
            self.bucket(channel, code)

    def may_match(self, code: int) -> bool:
        """Cheap test before building a field view: can any rule match this event id?"""
        return self._any_code or code in self._codes

    def bucket(self, channel: str, code: int | None) -> Bucket:
        """The rules of one (channel, event id), in load order, with their pre-filter."""
        key = (channel, code)
        bucket = self._buckets.get(key)
        if bucket is None:
            seen: set[int] = set()
            rules = []
            for group in (
                self._by_pair.get(key, ()) if code is not None else (),
                self._by_channel.get(channel, ()),
                self._by_code.get(code, ()) if code is not None else (),
                self._any,
            ):
                for rule in group:
                    if id(rule) not in seen:
                        seen.add(id(rule))
                        rules.append(rule)
            order = {id(rule): n for n, rule in enumerate(self.rules)}
            rules.sort(key=lambda rule: order[id(rule)])
            bucket = self._buckets[key] = Bucket(rules)
        return bucket

    def candidates(self, view: FieldView) -> list[CompiledRule]:
        """The rules of the event's log whose pre-filter it passes (then matched in full)."""
        return self.bucket(view.channel, view.code).candidates(view)
