"""The metric catalog: agentprom's public interface, as data.

Every metric agentprom exposes is declared here once, with its type, labels,
buckets and help. The series store, the renderer, ``docs/metrics.md`` (made by
``agentprom docs metrics``), and the tests that check rules, dashboards and the
Helm chart all read this module. Change a name or label only deliberately.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

#: the ``metric`` label value of self-metrics about any family of incoming OTLP metrics: their names
#: come from the sender, so each one as a label value would make the self-metrics unbounded
OTLP_IN_METRIC = "otlp_in"


def doubling(start: float, count: int) -> tuple[float, ...]:
    """``count`` bucket bounds starting at ``start``, each twice the last (rounded to 6 digits)."""
    return tuple(round(start * 2**i, 6) for i in range(count))


#: 0.1 s .. 409.6 s (the OTel GenAI ``gen_ai.invoke_agent.duration`` buckets)
AGENT_DURATION_BUCKETS = doubling(0.1, 13)
#: 0.01 s .. 81.92 s (the OTel GenAI ``gen_ai.client.operation.duration`` buckets)
CALL_DURATION_BUCKETS = doubling(0.01, 14)
#: 1 .. 67108864 tokens, powers of 4 (the OTel GenAI ``gen_ai.client.token.usage`` buckets)
TOKEN_USAGE_BUCKETS = tuple(float(4**i) for i in range(14))
#: the OTel Collector spanmetrics connector's default buckets (2 ms .. 15 s), in seconds
SPAN_DURATION_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0)
#: seconds to the first token: the OTel GenAI ``gen_ai.server.time_to_first_token`` buckets
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: seconds per output token: the OTel GenAI ``gen_ai.server.time_per_output_token`` buckets, with three
#: below 10 ms (chunks of fast models come that quickly)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
#: calls per run: 1 .. 512, powers of 2 (the OTel GenAI ``gen_ai.invoke_agent.tool_calls`` buckets, extended
#: so that a run that loops shows where it stops)
RUN_CALL_BUCKETS = doubling(1, 10)
#: US dollars per run: 0.0001 .. 100, 1-5 steps per decade
RUN_COST_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0)
SESSION_DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
PHASE_DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    #: a catalog section for the docs
    group: str = "agents"
    #: series not updated for the store's TTL are dropped (self-metrics never expire)
    expires: bool = True

    def __post_init__(self) -> None:
        if self.type == COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        if (self.type == HISTOGRAM) != bool(self.buckets):
            raise ValueError(f"{self.name}: buckets go with histograms, and histograms need them")
        if list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"{self.name}: buckets must be strictly increasing")


def _self(name: str, type_: str, help_: str, labels: tuple[str, ...] = ()) -> MetricSpec:
    return MetricSpec(name, type_, help_, labels, group="self", expires=False)


CATALOG: tuple[MetricSpec, ...] = (
    # --- agent invocations ---------------------------------------------------
    MetricSpec(
        "agent_invocations_total", COUNTER,
        "Agent invocations (invoke_agent / AGENT / traceloop agent spans) by outcome.",
        ("agent", "status"),
    ),
    MetricSpec(
        "agent_invocation_duration_seconds", HISTOGRAM,
        "Duration of agent invocations.",
        ("agent",), AGENT_DURATION_BUCKETS,
    ),
    # --- LLM calls -----------------------------------------------------------
    MetricSpec(
        "agent_llm_calls_total", COUNTER,
        "LLM calls (chat, text_completion, generate_content, embeddings, other) by outcome.",
        ("agent", "provider", "model", "operation", "status"), group="llm",
    ),
    MetricSpec(
        "agent_llm_duration_seconds", HISTOGRAM,
        "Duration of LLM calls.",
        ("agent", "provider", "model", "operation"), CALL_DURATION_BUCKETS, group="llm",
    ),
    MetricSpec(
        "agent_tokens_total", COUNTER,
        "Tokens used by LLM calls. type is input, output, cache_read, cache_write or reasoning; "
        "cache_read and cache_write are parts of input and reasoning is part of output, as in the OTel GenAI "
        "conventions.",
        ("agent", "provider", "model", "type"), group="llm",
    ),
    MetricSpec(
        "agent_llm_cost_usd_total", COUNTER,
        "Cost of LLM calls in US dollars: the span's own (llm.cost.total, gen_ai.usage.cost) where it reports "
        "one, else its token usage priced from the price table (pricing; docs/conventions.md, Cost).",
        ("agent", "provider", "model"), group="llm",
    ),
    MetricSpec(
        "agent_llm_unpriced_calls_total", COUNTER,
        "LLM calls with token usage but no cost: the span reports none and the price table has no entry for "
        "the model (or pricing is off). Their cost is missing from agent_llm_cost_usd_total.",
        ("provider", "model"), group="llm",
    ),
    MetricSpec(
        "agent_llm_streaming_calls_total", COUNTER,
        "LLM calls that streamed their response (gen_ai.request.stream, llm.is_streaming, or a reported time to "
        "first token).",
        ("agent", "provider", "model"), group="llm",
    ),
    MetricSpec(
        "agent_llm_time_to_first_token_seconds", HISTOGRAM,
        "Time from a streamed LLM request to its first chunk (gen_ai.response.time_to_first_chunk, "
        "gen_ai.server.time_to_first_token, OpenInference's first-token event).",
        ("agent", "provider", "model"), TTFT_BUCKETS, group="llm",
    ),
    MetricSpec(
        "agent_llm_time_per_output_token_seconds", HISTOGRAM,
        "Mean time between output chunks or tokens of a streamed LLM call (gen_ai.server.time_per_output_token).",
        ("agent", "provider", "model"), TPOT_BUCKETS, group="llm",
    ),
    MetricSpec(
        "agent_llm_finish_reasons_total", COUNTER,
        "LLM calls by the reason the model stopped, as the provider reports it (stop, length, max_tokens, "
        "tool_calls, content_filter, ...; length and max_tokens are token-limit hits). A call reporting several "
        "choices counts once per distinct reason.",
        ("agent", "provider", "model", "reason"), group="llm",
    ),
    # --- tools ---------------------------------------------------------------
    MetricSpec(
        "agent_tool_calls_total", COUNTER,
        "Tool calls by outcome.",
        ("agent", "tool", "status"), group="tools",
    ),
    MetricSpec(
        "agent_tool_duration_seconds", HISTOGRAM,
        "Duration of tool calls.",
        ("agent", "tool"), CALL_DURATION_BUCKETS, group="tools",
    ),
    MetricSpec(
        "agent_tool_errors_total", COUNTER,
        "Failed tool calls by error type (error.type, else exception.type, else _OTHER).",
        ("agent", "tool", "error_type"), group="tools",
    ),
    # --- errors across components -------------------------------------------
    MetricSpec(
        "agent_errors_total", COUNTER,
        "Failed agent, LLM and tool spans by component and error type.",
        ("agent", "component", "error_type"),
    ),
    # --- guardrails -------------------------------------------------------------
    MetricSpec(
        "agent_guardrail_checks_total", COUNTER,
        "Guardrail checks (apply_guardrail, OpenInference GUARDRAIL, OpenLLMetry gen_ai.guardrail.* spans) by "
        "the verdict the instrumentation reports (outcome, as written: PASSED, FAILED, ...; unknown when it "
        "reports none, error when such a span failed).",
        ("agent", "guardrail", "outcome"),
    ),
    MetricSpec(
        "agent_guardrail_duration_seconds", HISTOGRAM,
        "Duration of guardrail checks.",
        ("agent", "guardrail"), CALL_DURATION_BUCKETS,
    ),
    # --- runs: the call graph and per-run fan-out (trace context) -----------------
    MetricSpec(
        "agent_subagent_calls_total", COUNTER,
        "Invocations of an agent (subagent) nested under another agent's invocation (agent), by outcome: "
        "the edges of the agent call graph.",
        ("agent", "subagent", "status"),
    ),
    MetricSpec(
        "agent_subagent_duration_seconds", HISTOGRAM,
        "Duration of invocations nested under another agent's invocation.",
        ("agent", "subagent"), AGENT_DURATION_BUCKETS,
    ),
    MetricSpec(
        "agent_invocation_llm_calls", HISTOGRAM,
        "LLM calls per agent invocation: scope=own counts the run's own calls, scope=all adds those of the "
        "sub-agents it invoked.",
        ("agent", "scope"), RUN_CALL_BUCKETS,
    ),
    MetricSpec(
        "agent_invocation_cycles", HISTOGRAM,
        "Reasoning cycles per agent invocation: the framework's loop-cycle spans where it has them (Strands' "
        "execute_event_loop_cycle), else the run's own LLM calls.",
        ("agent",), RUN_CALL_BUCKETS,
    ),
    MetricSpec(
        "agent_invocation_tool_calls", HISTOGRAM,
        "Tool calls per agent invocation (scope as agent_invocation_llm_calls).",
        ("agent", "scope"), RUN_CALL_BUCKETS,
    ),
    MetricSpec(
        "agent_invocation_tokens", HISTOGRAM,
        "Input plus output tokens of the LLM calls per agent invocation (scope as agent_invocation_llm_calls).",
        ("agent", "scope"), TOKEN_USAGE_BUCKETS,
    ),
    MetricSpec(
        "agent_invocation_cost_usd", HISTOGRAM,
        "US dollars of the LLM calls per agent invocation (scope as agent_invocation_llm_calls).",
        ("agent", "scope"), RUN_COST_BUCKETS,
    ),
    # --- evaluations ---------------------------------------------------------------
    # OTel GenAI gen_ai.evaluation.result, from log records (/v1/logs, LogsService) and span events
    # (evaluations/). One bucket set for the usual scales: 0 and 0.1 .. 1 by 0.1 (0-1), 2 .. 10 by 1
    # (1-5, 1-10), 20 .. 100 by 10 (0-100); an evaluation name keeps one scale, so selecting it selects one.
    MetricSpec(
        "agent_evaluation_score", HISTOGRAM,
        "Scores of evaluation results (gen_ai.evaluation.score.value) by the agent of the evaluated span and the "
        "evaluation name (gen_ai.evaluation.name). One bucket set fits 0-1, 1-5, 1-10 and 0-100 scales: compare "
        "within one evaluation. Results with only a label are in agent_evaluations_total alone.",
        ("agent", "evaluation"),
        (0.0, *(round(0.1 * i, 1) for i in range(1, 11)), *(float(i) for i in range(2, 11)),
         *(float(i) for i in range(20, 101, 10))),
        group="evaluations",
    ),
    MetricSpec(
        "agent_evaluations_total", COUNTER,
        "Evaluation results (gen_ai.evaluation.result log records and span events) by the agent of the evaluated "
        "span, the evaluation name and the score label (gen_ai.evaluation.score.label; empty when the result "
        "has none). The explanation and any other content are never labels.",
        ("agent", "evaluation", "label"), group="evaluations",
    ),
    _self("agentprom_log_records_received_total", COUNTER,
          "OTLP log records received in decodable export requests, by transport.", ("transport",)),
    _self("agentprom_log_records_dropped_total", COUNTER,
          "OTLP log records not counted as evaluation results, by reason: not_an_evaluation (any other log "
          "record: dropped by design, not reported), evaluation_error (a result without score or label whose "
          "error.type says the evaluation failed), and invalid results, also reported through partial_success: "
          "missing_name, invalid_score (not a finite number within evaluations.max_abs_score, and no label), "
          "no_result (neither score nor label).", ("reason",)),
    _self("agentprom_evaluation_events_dropped_total", COUNTER,
          "gen_ai.evaluation.result span events not counted, by reason (as agentprom_log_records_dropped_total: "
          "missing_name, invalid_score, no_result, evaluation_error).", ("reason",)),
    _self("agentprom_evaluation_fallbacks_total", COUNTER,
          "Evaluation log records counted for their resource's service.name because their span was not settled "
          "in time, by reason: timeout (evaluations.max_wait_seconds), overflow (evaluations.max_waiting), "
          "shutdown.", ("reason",)),
    # --- runtime sessions and phases (sessions/) ------------------------------
    MetricSpec(
        "agent_sessions_total", COUNTER,
        "Ended runtime sessions by final status (completed, failed, abandoned).",
        ("agent", "status"), group="sessions",
    ),
    MetricSpec(
        "agent_sessions_active", GAUGE,
        "Runtime sessions open now.",
        ("agent",), group="sessions",
    ),
    MetricSpec(
        "agent_session_duration_seconds", HISTOGRAM,
        "Duration of ended runtime sessions.",
        ("agent", "status"), SESSION_DURATION_BUCKETS, group="sessions",
    ),
    MetricSpec(
        "agent_session_tool_calls", HISTOGRAM,
        "Tool calls per ended runtime session.",
        ("agent",), doubling(1, 8), group="sessions",
    ),
    MetricSpec(
        "agent_session_continuity_score", HISTOGRAM,
        "Continuity score (0-100) of ended runtime sessions; see docs/sessions.md for the formula.",
        ("agent",), tuple(float(x) for x in range(10, 101, 10)), group="sessions",
    ),
    MetricSpec(
        "agent_phases_total", COUNTER,
        "Ended phases by outcome.",
        ("agent", "phase", "status"), group="sessions",
    ),
    MetricSpec(
        "agent_phase_duration_seconds", HISTOGRAM,
        "Duration of ended phases.",
        ("agent", "phase"), PHASE_DURATION_BUCKETS, group="sessions",
    ),
    MetricSpec(
        "agent_recoveries_total", COUNTER,
        "Failed tool or LLM calls followed, in the same session, by a successful call of the same tool or model.",
        ("agent", "component"), group="sessions",
    ),
    MetricSpec(
        "agent_session_model_switches_total", COUNTER,
        "LLM calls of a session that asked for another model than the session's previous LLM call (request "
        "model), in the order the calls ended.",
        ("agent",), group="sessions",
    ),
    MetricSpec(
        "agent_tool_retries_total", COUNTER,
        "Tool and LLM calls that were retries of an earlier attempt (agent.retry.attempt > 1 or "
        "http.request.resend_count > 0); for LLM calls tool is llm: followed by the model.",
        ("agent", "tool"), group="sessions",
    ),
    MetricSpec(
        "agent_checkpoints_total", COUNTER,
        "Checkpoints created by agents.",
        ("agent",), group="sessions",
    ),
    MetricSpec(
        "agent_context_resets_total", COUNTER,
        "Context resets (the agent lost or cleared its working context).",
        ("agent",), group="sessions",
    ),
    MetricSpec(
        "agent_memory_operations_total", COUNTER,
        "Agent memory reads and writes.",
        ("agent", "operation"), group="sessions",
    ),
    MetricSpec(
        "agent_context_utilization_ratio", HISTOGRAM,
        "Context tokens used divided by context tokens available, per observation.",
        ("agent",), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5), group="sessions",
    ),
    MetricSpec(
        "agent_tool_calls_in_flight", GAUGE,
        "Tool calls started (event API tool_started) and not yet completed or failed.",
        ("agent",), group="sessions",
    ),
    # --- compatibility outputs (registered only when switched on in ``compat:``) ---
    # OTel GenAI standard metrics, named as the OTel->Prometheus translation names them.
    MetricSpec(
        "gen_ai_client_operation_duration_seconds", HISTOGRAM,
        "OTel GenAI gen_ai.client.operation.duration: duration of LLM calls (compat.genai_metrics).",
        ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
         "error_type"),
        CALL_DURATION_BUCKETS, group="compat",
    ),
    MetricSpec(
        "gen_ai_client_token_usage", HISTOGRAM,
        "OTel GenAI gen_ai.client.token.usage: input and output tokens per LLM call (compat.genai_metrics).",
        ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
         "gen_ai_token_type"),
        TOKEN_USAGE_BUCKETS, group="compat",
    ),
    MetricSpec(
        "gen_ai_invoke_agent_duration_seconds", HISTOGRAM,
        "OTel GenAI gen_ai.invoke_agent.duration: duration of agent invocations (compat.genai_metrics).",
        ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_agent_name", "gen_ai_request_model", "error_type"),
        AGENT_DURATION_BUCKETS, group="compat",
    ),
    MetricSpec(
        "gen_ai_execute_tool_duration_seconds", HISTOGRAM,
        "OTel GenAI gen_ai.execute_tool.duration: duration of tool executions (compat.genai_metrics).",
        ("gen_ai_operation_name", "gen_ai_agent_name", "gen_ai_tool_name", "error_type"),
        CALL_DURATION_BUCKETS, group="compat",
    ),
    # The OTel Collector spanmetrics connector's names (Jaeger's Monitor tab, spanmetrics dashboards).
    MetricSpec(
        "traces_span_metrics_calls_total", COUNTER,
        "Every span received, spanmetrics-style (compat.span_metrics).",
        ("service_name", "span_name", "span_kind", "status_code"), group="compat",
    ),
    MetricSpec(
        "traces_span_metrics_duration_seconds", HISTOGRAM,
        "Duration of every span received, spanmetrics-style (compat.span_metrics).",
        ("service_name", "span_name", "span_kind", "status_code"), SPAN_DURATION_BUCKETS, group="compat",
    ),
    # --- the sidecar itself ---------------------------------------------------
    _self("agentprom_spans_received_total", COUNTER,
          "Spans received in decodable export requests, by transport.", ("transport",)),
    _self("agentprom_spans_rejected_total", COUNTER,
          "Spans rejected individually (reported through partial_success), by reason.", ("reason",)),
    _self("agentprom_requests_refused_total", COUNTER,
          "Export requests refused whole (decode_error, too_large, too_many_spans, too_many_log_records, "
          "too_many_items, unsupported_media_type, unsupported_encoding, overloaded, memory_limit, fair_share, worker_lost, "
          "timeout), by transport and reason. overloaded, memory_limit, fair_share and worker_lost refusals tell the "
          "client to retry.",
          ("transport", "reason")),
    _self("agentprom_decode_worker_restarts_total", COUNTER,
          "Decode worker processes (server.workers) that ended unexpectedly, or stopped answering and were "
          "ended, and were replaced; the requests each held were refused as retryable (reason worker_lost)."),
    _self("agentprom_decode_workers", GAUGE,
          "Decode worker processes running now (server.workers above 1). 0 while workers are configured means "
          "none runs: between a worker's end and its replacement, or for good after they could not start "
          "(decoding then happens in the main process, logged)."),
    _self("agentprom_series_overflow_total", COUNTER,
          "Observations folded into a metric's otel_metric_overflow series because it reached its series limit "
          "(incoming OTLP metrics: points dropped instead). metric is the catalog name, or otlp_in for every "
          "incoming OTLP metric.",
          ("metric",)),
    _self("agentprom_label_overflow_total", COUNTER,
          "Observations whose value of one label was replaced by __overflow__ because that label of the metric "
          "reached its budget of distinct values (store.max_label_values, store.label_values); the other labels "
          "keep their values. metric is the catalog name, label the label replaced.",
          ("metric", "label")),
    _self("agentprom_series_overflow_dropped_total", COUNTER,
          "Gauge updates left out of a gauge's otel_metric_overflow series (the sum of the last values of the "
          "label sets folded into it) because it already remembers store.max_folded_label_sets non-zero ones.",
          ("metric",)),
    _self("agentprom_series_expired_total", COUNTER,
          "Series removed because they were not updated within the expiry time. metric is the catalog name, or "
          "otlp_in for every incoming OTLP metric.", ("metric",)),
    _self("agentprom_active_series", GAUGE,
          "Series currently exposed, by metric: the catalog name, or otlp_in for all incoming OTLP metrics "
          "together (target_info included).", ("metric",)),
    _self("agentprom_sessions_evicted_total", COUNTER,
          "Open sessions ended early (as abandoned) because sessions.max_open_sessions was reached."),
    _self("agentprom_session_state_dropped_total", COUNTER,
          "Bookkeeping an open session could not keep because one of its per-session caps was reached, by "
          "structure (phase_spans, failing_calls, tools_in_flight, pending_calls, phase_index). Counts stay "
          "exact; what is lost is attribution (a call's phase, a recovery). The runtime API shows it per "
          "session.",
          ("structure",)),
    _self("agentprom_attribution_pending_spans", GAUGE,
          "Spans waiting for their ancestors before they are counted (attribution.max_pending_spans is the "
          "limit)."),
    _self("agentprom_attribution_fallbacks_total", COUNTER,
          "Spans counted with their trace tree incomplete, by reason: timeout (their ancestors did not arrive "
          "within attribution.max_wait_seconds), overflow (attribution.max_pending_spans or max_indexed_spans "
          "reached), shutdown, session_end (the runtime API ended the span's session), cycle (a span that is "
          "its own ancestor), duplicate_span_id (resolved, not "
          "indexed). Such spans are counted as if the missing ancestors did not exist.", ("reason",)),
    _self("agentprom_runtime_events_total", COUNTER,
          "Runtime API events by outcome (accepted, rejected).", ("outcome",)),
    _self("agentprom_jsonl_records_total", COUNTER,
          "JSONL invocation log records by outcome (written, dropped when the writer queue was full or the "
          "log was still unwritable at shutdown, restored at start).", ("outcome",)),
    _self("agentprom_jsonl_write_errors_total", COUNTER,
          "Failed write attempts to the JSONL invocation log, failed rotations included (the records of a "
          "failed write wait and are retried)."),
    _self("agentprom_jsonl_writable", GAUGE,
          "1 while the JSONL invocation log accepts writes, 0 while writes fail (disk full, directory gone "
          "or read-only); records wait in the writer queue meanwhile."),
    _self("agentprom_jsonl_queue_records", GAUGE,
          "JSONL records waiting to be written (jsonl.queue_records is the limit; beyond it records drop)."),
    _self("agentprom_jsonl_malformed_lines_total", COUNTER,
          "Lines of the JSONL invocation log skipped at start because they were not valid records."),
    _self("agentprom_jsonl_rotations_total", COUNTER,
          "Rotations of the JSONL invocation log."),
    _self("agentprom_store_records_total", COUNTER,
          "Journal records by store (postgres, redis) and outcome: shipped (in the store, with the journal "
          "position), malformed (lines that are no record, skipped), rejected (refused by the store one by one, "
          "e.g. a value PostgreSQL cannot hold; skipped so the rest ship, their ids logged).", ("store", "outcome")),
    _self("agentprom_store_journal_gaps_total", COUNTER,
          "Times a store's journal position named a file rotated away while the store was behind (jsonl.keep_files): "
          "shipping went on from the oldest file left, and the records between never reached the store.", ("store",)),
    _self("agentprom_store_errors_total", COUNTER,
          "Failed store operations by store and reason: unavailable, auth, timeout, rejected (the server refused "
          "a statement), conflict (another process moved the journal position), internal, process_exit (the "
          "shipping process died and was started again). Retried with backoff; nothing is lost while the "
          "journal keeps it.", ("store", "reason")),
    _self("agentprom_store_lag_records", GAUGE,
          "Journal records not yet in the store (0 when it has everything).", ("store",)),
    _self("agentprom_store_lag_seconds", GAUGE,
          "Seconds since the store last had every journal record (0 while it does).", ("store",)),
    _self("agentprom_store_up", GAUGE,
          "1 while the store's last operation succeeded, 0 while it fails.", ("store",)),
    _self("agentprom_metric_points_received_total", COUNTER,
          "OTLP metric data points received in decodable export requests, by transport.", ("transport",)),
    _self("agentprom_metric_points_dropped_total", COUNTER,
          "OTLP metric data points not exposed, by reason: invalid (e.g. invalid_buckets, "
          "unspecified_temporality), catalog_clash (the name is one of agentprom's own), type_conflict, "
          "family_limit, series_limit, label_limit, out_of_order, exponential_histogram (dropped by config), "
          "too_many_buckets (metrics_in.max_histogram_buckets), memory_budget (metrics_in.max_memory_mib), "
          "out_of_range (an accumulated counter or histogram sum would pass the largest double). "
          "Also reported to the sender through partial_success.",
          ("reason",)),
    _self("agentprom_queue_spans", GAUGE,
          "Spans accepted by the receivers and waiting for translation."),
    _self("agentprom_queue_limit_spans", GAUGE,
          "Queue capacity in spans (queue.max_spans); exports beyond it are refused as overloaded."),
    _self("agentprom_memory_limit_bytes", GAUGE,
          "Resident memory above which exports are refused as memory_limit (0 = no limit)."),
    _self("agentprom_auth_failures_total", COUNTER,
          "Requests refused for missing or wrong credentials (or client certificate), by listener.", ("listener",)),
    _self("agentprom_malformed_requests_total", COUNTER,
          "HTTP requests that could not be parsed (answered 400 before authentication), by listener; "
          "logged at most once per interval.", ("listener",)),
    _self("agentprom_scrapes_failed_total", COUNTER,
          "/metrics scrapes not served in full, by reason: concurrency_limit (answered 503 while "
          "server.max_concurrent_scrapes were in progress), write_timeout (the client did not read the body "
          "within server.scrape_write_timeout_seconds; the connection was closed).", ("reason",)),
    _self("agentprom_forwarded_spans_total", COUNTER,
          "Spans forwarded to the upstream OTLP endpoint and accepted by it."),
    _self("agentprom_forward_dropped_spans_total", COUNTER,
          "Accepted spans not forwarded, by reason (buffer_full, rejected, retries_exhausted, shutdown, "
          "unconvertible: accepted over OTLP/JSON but not representable in protobuf).", ("reason",)),
    _self("agentprom_forward_retries_total", COUNTER,
          "Failed forwarding attempts that were retried."),
    _self("agentprom_forward_buffer_bytes", GAUGE,
          "Bytes of export requests waiting to be forwarded (bounded by forward.buffer_max_bytes)."),
    _self("agentprom_internal_errors_total", COUNTER,
          "Failures inside the sidecar that were contained rather than passed to the caller, by component "
          "(pipeline: a batch's translation; listener: a span subscriber; sessions: session tracking of a span "
          "or the end of a session; runs: the per-run fan-out of a span; guardrails: counting a guardrail check; "
          "jsonl: a record the invocation log could not take; evaluations: counting the evaluation results of "
          "settled spans). Each is logged; "
          "anything above zero is a bug worth reporting.", ("component",)),
    _self("agentprom_pricing_reloads_total", COUNTER,
          "Reloads of the price table (SIGHUP) by result: ok, or error (the table did not validate or could not "
          "be read; the previous table stays in effect and the problem is logged).", ("result",)),
    _self("agentprom_fanout_missed_total", COUNTER,
          "LLM and tool calls left out of the per-run fan-out histograms: late (settled after their run was "
          "observed, attribution.run_grace_seconds after its agent span) or overflow (their run's tally was "
          "dropped at attribution.max_open_runs).", ("reason",)),
    _self("agentprom_build_info", GAUGE,
          "Always 1; the version label says which agentprom is running.", ("version",)),
    _self("agentprom_dimension_info", GAUGE,
          "1 for each extra dimension configured (dimensions:), whose label is the dimension label's value; "
          "the Spend by dimension dashboard lists them.", ("dimension",)),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}

#: compat option (config ``compat.<option>``) -> the metrics it switches on
COMPAT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "genai_metrics": (
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage",
        "gen_ai_invoke_agent_duration_seconds",
        "gen_ai_execute_tool_duration_seconds",
    ),
    "span_metrics": ("traces_span_metrics_calls_total", "traces_span_metrics_duration_seconds"),
}


def active_catalog(compat: Iterable[str] = ()) -> tuple[MetricSpec, ...]:
    """The catalog with only the compat outputs named in ``compat`` (options of ``COMPAT_OUTPUTS``)."""
    enabled = {name for option in compat for name in COMPAT_OUTPUTS[option]}
    return tuple(spec for spec in CATALOG if spec.group != "compat" or spec.name in enabled)

GROUP_TITLES = {
    "agents": "Agent invocations and errors",
    "llm": "LLM calls, tokens and cost",
    "tools": "Tool calls",
    "evaluations": "Evaluations",
    "sessions": "Sessions and phases",
    "compat": "Compatibility outputs (optional)",
    "self": "The sidecar itself",
}


def exposed_names(spec: MetricSpec) -> tuple[str, ...]:
    """Every sample name a metric produces (what PromQL can select)."""
    if spec.type == HISTOGRAM:
        return (spec.name + "_bucket", spec.name + "_count", spec.name + "_sum")
    return (spec.name,)


def all_exposed_names(catalog: tuple[MetricSpec, ...] = CATALOG) -> frozenset[str]:
    return frozenset(name for spec in catalog for name in exposed_names(spec))


def render_markdown(catalog: tuple[MetricSpec, ...] = CATALOG, dimensions: Sequence[Any] = ()) -> str:
    """The text of ``docs/metrics.md``; with the configuration's extra ``dimensions`` (and ``catalog``
    carrying their labels: dimensions.with_dimensions), the catalog as that configuration exposes it."""
    lines = [
        "# Metric catalog",
        "",
        "<!-- Generated by `agentprom docs metrics` from src/agentprom/metrics/catalog.py; do not edit. -->",
        "",
        "Every metric agentprom exposes on `/metrics`. Names and labels are the public interface.",
        "",
        "Label values: `agent` is the span's `gen_ai.agent.name` / `agent.name` / agent-span "
        "`traceloop.entity.name`, else the resource's `service.name`, else `unknown`. `tool` is "
        "`gen_ai.tool.name` / `tool.name` / tool-span `traceloop.entity.name`, else the span name "
        "without its `execute_tool ` prefix. `model` is the response model, else the request model, "
        "else `llm.model_name`, else `unknown`; `provider` is `gen_ai.provider.name`, `gen_ai.system`, "
        "`llm.provider` or `llm.system`, else `unknown`. `status` is `ok` or `error`.",
        "",
        "Token types: `input` is every input token, and `cache_read` and `cache_write` are the parts "
        "of `input` that were read from or written to the provider's prompt cache, as the OTel GenAI "
        "conventions define them: do not add them to `input`. Likewise `reasoning` (from "
        "`gen_ai.usage.reasoning.output_tokens`, OpenInference's `llm.token_count.completion_details.reasoning` "
        "or OpenLLMetry's `gen_ai.usage.reasoning_tokens`) is the part of `output` the model spent "
        "reasoning: do not add it to `output`. Tokens and cost are counted on LLM-call "
        "spans only, because agent spans often repeat their children's usage.",
        "",
        "Cost: `agent_llm_cost_usd_total` adds, per LLM call, the span's own cost (`llm.cost.total`, "
        "`gen_ai.usage.cost`) where it reports one, else its token usage priced from the price table "
        "(`pricing` in the config: the shipped table with its as-of date and sources, a table of your own, "
        "entries of your own; reloaded on SIGHUP). Cache-read and cache-write tokens are priced at their "
        "cache rates, reasoning tokens at the reasoning rate. A call with usage, no cost and no price is "
        "counted in `agent_llm_unpriced_calls_total` instead, so a missing price shows. Details: "
        "docs/conventions.md, \"Cost\".",
        "",
        "Bounds: an LLM-call span with more tokens of one type than `limits.max_tokens_per_span` "
        "(default 10^8) or a cost above `limits.max_cost_usd_per_span` (default 10^4 USD), and any span "
        "that stands for more than `sampling.max_adjusted_count` spans (default 10^6, i.e. sampled with "
        "a probability below 10^-6), is rejected as a whole and counted nowhere: "
        '`agentprom_spans_rejected_total{reason="amount_out_of_range"}` or '
        '`{reason="sampling_weight_out_of_range"}`, reported to the client through OTLP partial success. '
        "So no counter can be pushed to +Inf.",
        "",
        "Each label of each counter and histogram above has a budget of distinct values (`store.max_label_values`, "
        "default 1000, or its own in `store.label_values`): past it, a new value of that label alone "
        "becomes `__overflow__` while the other labels keep theirs, so a flood of tool names from one "
        "agent leaves `sum by (agent)` exact. A metric that still reaches its series limit folds new "
        'label sets into one series labelled `otel_metric_overflow="true"` (other labels empty): a '
        "counter or histogram adds their observations, a gauge's overflow series is the sum of their "
        "last values. Series not updated within the expiry time disappear. All three are counted in the "
        "self-metrics below.",
        "",
        "Extra dimensions: `dimensions:` in the configuration adds labels (a tenant, a user, an environment) "
        "to chosen call metrics, each from the first of its span or resource attributes present, else a default; "
        "their values have budgets like any label. `agentprom docs metrics --config FILE` prints this catalog "
        "with them, `agentprom generate rules --config FILE` writes their budget alerts, and the "
        "\"Spend by dimension\" dashboard shows them (config/agentprom.yaml, `dimensions`).",
        "",
    ]
    if dimensions:
        lines += ["## Extra dimensions", "",
                  "This configuration adds these labels (`dimensions:`), each from the first of its attributes "
                  "present on the span, else on its resource, else its default; runtime API events get the default.",
                  ""]
        for d in dimensions:
            sources = ", ".join(f"`{key}`" for key in d.attributes)
            families = ", ".join(f"`{name}`" for name in d.metrics)
            lines.append(f"- `{d.label}`: from {sources}, default `{d.default}`; on {families}.")
        lines.append("")
    for group, title in GROUP_TITLES.items():
        specs = [spec for spec in catalog if spec.group == group]
        if not specs:
            continue
        lines += [f"## {title}", "", "| name | type | labels | buckets | description |", "|---|---|---|---|---|"]
        for spec in specs:
            labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
            buckets = " ".join(f"{b:.10g}" for b in spec.buckets) or "-"
            lines.append(f"| `{spec.name}` | {spec.type} | {labels} | {buckets} | {spec.help} |")
        lines.append("")
    lines += [
        "## Process metrics",
        "",
        "The standard `process_*` and `python_*` metrics of prometheus_client are exposed as well.",
        "",
    ]
    return "\n".join(lines)
