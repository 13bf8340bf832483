"""What an evaluation result is: the record a logs export decodes to, and the rules a result must pass.

The OTel GenAI conventions (model/gen-ai/events.yaml, ``gen_ai.evaluation.result``,
status development) define an evaluation result as an event with
``gen_ai.evaluation.name`` (required), ``gen_ai.evaluation.score.value`` (a
double) and/or ``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation``,
``gen_ai.response.id`` and ``error.type``. The decoders keep only the name, score,
label and error type (``profile.EVALUATION_KEYS``): the explanation is free text
(content) and is never decoded, so it cannot reach a label or a log line, and is not kept.

``result`` applies the rules to a result's attributes, wherever it came from (a
log record or a span event), and returns what is counted or why it is not:

* no name (absent, empty, not a string): ``missing_name``;
* a score that is not a finite number (NaN, an infinity, a string, a boolean) or
  whose magnitude passes ``evaluations.max_abs_score``: the score is ignored when
  the result has a label (it is counted by its label), else ``invalid_score``;
* neither score nor label: ``evaluation_error`` when ``error.type`` says the
  evaluation failed (dropped, but not invalid), else ``no_result``.

A label that is not a string counts as absent. Strings were cut to
``server.max_string_bytes`` when decoded; the store's label hygiene and value
budgets apply on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from agentprom.conventions.profile import ERROR_TYPE, EVALUATION_LABEL, EVALUATION_NAME, EVALUATION_SCORE

#: a result the evaluator reports as failed: valid, but there is nothing to count
EVALUATION_ERROR = "evaluation_error"
#: a log record whose event name is not ``gen_ai.evaluation.result``: dropped by design, never reported
NOT_AN_EVALUATION = "not_an_evaluation"
#: why a result is invalid (reported to a log exporter through partial success)
INVALID_REASONS = ("missing_name", "invalid_score", "no_result")


def result(attrs: dict[str, Any], max_abs_score: float) -> tuple[str, float | None, str] | str:
    """``(name, score or None, label or "")`` for a result to count, else why it is not counted
    (one of ``INVALID_REASONS``, or ``EVALUATION_ERROR``)."""
    name = attrs.get(EVALUATION_NAME)
    if name.__class__ is not str or not name:
        return "missing_name"
    label = attrs.get(EVALUATION_LABEL)
    if label.__class__ is not str:
        label = ""
    score = attrs.get(EVALUATION_SCORE)
    if score is not None:
        if not _valid_score(score, max_abs_score):
            if not label:
                return "invalid_score"
            score = None  # counted by its label
        else:
            score = float(score)
    elif not label:
        return EVALUATION_ERROR if attrs.get(ERROR_TYPE) else "no_result"
    return name, score, label


def _valid_score(score: Any, max_abs_score: float) -> bool:
    cls = score.__class__
    if cls is int:  # an int64 from the wire: compared exactly, before any float conversion
        return abs(score) <= max_abs_score
    return cls is float and math.isfinite(score) and abs(score) <= max_abs_score


@dataclass(slots=True)
class EvaluationRecord:
    """One log record that names itself an evaluation result, as decoded (not yet checked by ``result``)."""

    #: the attributes read (``profile.EVALUATION_KEYS``), strings cut to ``server.max_string_bytes``
    attributes: dict[str, Any]
    #: the record's trace context: the evaluated span, when the evaluator parented it (b"" when absent
    #: or malformed: such a record is counted for its ``service``)
    trace_id: bytes
    span_id: bytes
    #: its resource's ``service.name`` ("" when absent)
    service: str


@dataclass(slots=True)
class LogBatch:
    """The outcome of decoding one logs export request: its evaluation results, and what was left out."""

    records: list[EvaluationRecord] = field(default_factory=list)
    #: log records in the request
    received: int = 0
    #: reason -> records dropped by design (``not_an_evaluation``, ``evaluation_error``): accepted as far as
    #: OTLP is concerned, counted in ``agentprom_log_records_dropped_total``
    dropped: dict[str, int] = field(default_factory=dict)
    #: reason -> invalid evaluation results (``INVALID_REASONS``), reported through ``partial_success``
    #: (filled when the batch is counted: evaluations/counter.py)
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def error_message(self) -> str:
        return "; ".join(f"{n} log record(s) rejected: {reason} (gen_ai.evaluation.result)"
                         for reason, n in sorted(self.rejected.items()))
