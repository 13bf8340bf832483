"""What a span belongs to besides its agent: the runtime session it names and the phase it is.

The trace-context stage (stage.py) resolves each span's session and phase from
its trace with these two readers (docs/sessions.md, "The model"):

* A span names a session with ``agent.session.id`` or another convention's key
  (``profile.SESSION_KEYS``, first present wins). A span that names none belongs
  to the session the latest keyed span of its trace named, if any.
* A span that is not a call is a **phase span** when it carries
  ``agent.phase.name`` (its phase id is ``agent.phase.id``, else the name), or
  when it matches a rule of ``sessions.phase_spans`` (its phase id is then its
  span id); a rule with ``parent_kind: agent`` matches only below an agent span.
  A call's phase is that of the nearest phase span above it.

Both are read once per span, and only from spans that carry one of the keys
(``session_keys`` / ``PhaseRules.keys``: the stage checks their union once).
"""

from __future__ import annotations

from typing import Any

from agentprom.config.schema import PhaseSpanRule
from agentprom.conventions import profile as P
from agentprom.conventions.classify import first_str

#: any of these on a span: it may name a session
session_keys: frozenset[str] = frozenset(P.SESSION_KEYS)


def session_of(attrs: dict[str, Any]) -> str | None:
    """The session a span's attributes name (first key present wins), or None."""
    return first_str(attrs, P.SESSION_KEYS)


class PhaseRules:
    """Which spans are phase spans: ``agent.phase.name``, then the configured rules in order."""

    __slots__ = ("rules", "keys")

    def __init__(self, rules: tuple[PhaseSpanRule, ...]) -> None:
        self.rules = rules
        #: any of these on a span: it may be a phase span
        self.keys: frozenset[str] = frozenset({P.OWN_PHASE_NAME, *(rule.attribute for rule in rules)})

    def phase_of(self, span: Any, below_agent: bool) -> tuple[str, str] | None:
        """(phase id, phase name) when ``span`` (not a call) is a phase span; ``below_agent``:
        its parent is an agent span."""
        attrs = span.attributes
        name = attrs.get(P.OWN_PHASE_NAME)
        if name is not None and name != "":
            return str(attrs.get(P.OWN_PHASE_ID) or name), str(name)
        for rule in self.rules:
            if attrs.get(rule.attribute) == rule.value and (below_agent or rule.parent_kind != "agent"):
                label = next((str(attrs[k]) for k in rule.name_keys if attrs.get(k)), span.name) or "unknown"
                return span.span_id.hex(), label
        return None
