"""Run a benchmark scenario against a sidecar: one session at a time, one record per session.

For each session the runner drives the agent (the synthetic agent, or the
user's command with the sidecar and a session id in its environment), then
asks the sidecar's session API for the session once it has ended, and hands
the record to ``write`` at once (a long run that stops keeps what it did).
A session without a sidecar record is recorded as failed, with the reason;
three such sessions in a row because the sidecar cannot be reached stop the
run.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentprom.benchmark.command import CommandResult, run_command
from agentprom.benchmark.plan import plan_session
from agentprom.benchmark.records import mismatches, session_record
from agentprom.benchmark.scenario import CommandScenario, Scenario, SyntheticScenario
from agentprom.benchmark.sidecar import Fetched, SidecarClient, SidecarError
from agentprom.clock import Clock, SystemClock
from agentprom.sessions.timestamps import iso

#: the issue's record, first in every line
REQUIRED = ("session_id", "benchmark_name", "success", "tool_calls", "duration_ms", "recovery_count",
            "continuity_score")
#: consecutive sessions that could not reach the sidecar before the run stops
MAX_UNREACHABLE = 3
#: environment variables a command run gets (besides OTEL_*)
ENV_SESSION_ID = "AGENTPROM_SESSION_ID"
ENV_BENCHMARK = "AGENTPROM_BENCHMARK_NAME"
ENV_RUN_INDEX = "AGENTPROM_RUN_INDEX"
ENV_SIDECAR = "AGENTPROM_SIDECAR_URL"
#: inherited signal-specific settings that would send the command's spans elsewhere
OVERRIDDEN = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")

Writer = Callable[[dict[str, Any]], None]
Progress = Callable[[str], None]


class BenchError(Exception):
    """The run cannot start (or go on): the message says why."""


@dataclass
class RunSummary:
    run_id: str
    sessions: int = 0
    succeeded: int = 0
    #: sessions the sidecar had no (ended) record of
    without_record: int = 0
    #: synthetic sessions whose sidecar record differs from the plan's ground truth
    mismatched: int = 0
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        """Every session got a sidecar record that (for synthetic runs) matches the workload."""
        return self.aborted is None and not self.without_record and not self.mismatched

    def text(self) -> str:
        line = (f"run {self.run_id}: {self.sessions} session(s), {self.succeeded} succeeded, "
                f"{self.sessions - self.succeeded} failed; {self.without_record} without a sidecar record")
        if self.mismatched:
            line += f"; {self.mismatched} differ from the workload's ground truth"
        if self.aborted:
            line += f"; stopped: {self.aborted}"
        return line


#: the synthetic agent's ground truth goes last: it is long
LAST = ("expected", "mismatches")


def ordered(record: dict[str, Any]) -> dict[str, Any]:
    head = {name: record.get(name) for name in REQUIRED}
    middle = {key: value for key, value in record.items() if key not in head and key not in LAST}
    return {**head, **middle, **{key: record[key] for key in LAST if key in record}}


#: the session ids ``Runner.session_id`` gives: NAME-RUNID-INDEX (RUNID 8 hex digits, INDEX 6 digits)
BENCH_SESSION_ID = re.compile(r"-[0-9a-f]{8}-[0-9]{6}$")


class Runner:
    def __init__(self, scenario: Scenario, sidecar_url: str, write: Writer, *, sessions: int | None = None,
                 seed: int | None = None, progress: Progress | None = None, log_dir: Path | None = None,
                 clock: Clock | None = None, sleep: Callable[[float], None] = time.sleep,
                 force: bool = False) -> None:
        self.scenario = scenario
        self.sidecar_url = sidecar_url
        self.write = write
        self.sessions = sessions
        self.seed = seed
        self.progress = progress or (lambda line: None)
        self.log_dir = log_dir
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.client = SidecarClient(sidecar_url, clock=self.clock, sleep=sleep)
        self.summary = RunSummary(run_id=secrets.token_hex(4))
        self.force = force
        self._unreachable = 0

    def session_id(self, index: int) -> str:
        return f"{self.scenario.name}-{self.summary.run_id}-{index:06d}"

    def run(self) -> RunSummary:
        try:
            self.client.check()
            if isinstance(self.scenario, SyntheticScenario) and not self.force:
                self._refuse_to_mix_future_sessions_with_real_ones(self.scenario)
        except SidecarError as error:
            raise BenchError(str(error)) from None
        if isinstance(self.scenario, SyntheticScenario):
            self._run_synthetic(self.scenario)
        else:
            self._run_command(self.scenario)
        return self.summary

    def _fetch(self, session_id: str, end_as: str | None = None) -> Fetched:
        try:
            fetched = self.client.wait_ended(session_id, self.scenario.record_timeout_seconds, end_as)
        except SidecarError as error:
            self._unreachable += 1
            return Fetched(None, None, str(error))
        self._unreachable = 0
        return fetched

    def _base(self, index: int, session_id: str) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "benchmark_name": self.scenario.name,
            "scenario_kind": self.scenario.kind,
            "run_id": self.summary.run_id,
            "run_index": index,
            "started_at": iso(self.clock.now()),
        }

    def _finish(self, record: dict[str, Any], success: bool, reason: str | None, wall: float) -> bool:
        """Count and write one record; False when the run must stop."""
        record["success"] = success
        record["failure_reason"] = None if success else reason or f"the sidecar reports the session {record['status']}"
        record["wall_ms"] = round(wall * 1000.0, 1)
        summary = self.summary
        summary.sessions += 1
        summary.succeeded += success
        summary.without_record += record["status"] in (None, "active")
        self.write(ordered(record))
        state = "ok" if success else f"FAILED ({record['failure_reason']})"
        self.progress(f"{record['session_id']}: {state}; tool_calls={record['tool_calls']} "
                      f"duration_ms={record['duration_ms']} continuity={record['continuity_score']}")
        if self._unreachable >= MAX_UNREACHABLE:
            summary.aborted = f"the sidecar could not be reached for {MAX_UNREACHABLE} sessions in a row"
            return False
        return True

    # -- the synthetic agent ---------------------------------------------------------

    def _refuse_to_mix_future_sessions_with_real_ones(self, scenario: SyntheticScenario) -> None:
        """Synthetic sessions with simulated pacing (or realtime faster than life) are dated ahead of the
        wall clock; next to an agent's real sessions they would skew its session API, metrics and JSONL
        log. Refuse unless every session the sidecar holds was sent by a benchmark (``--force`` skips this)."""
        if scenario.pacing != "simulated" and scenario.speed <= 1:
            return
        real = [s for s in self.client.sessions() if not BENCH_SESSION_ID.search(str(s.get("session_id")))]
        if real:
            example = real[0]
            raise BenchError(
                f"the sidecar at {self.sidecar_url} already holds {len(real)} session(s) no benchmark sent "
                f"(e.g. {example.get('session_id')!r} of agent {example.get('agent')!r}), and this scenario "
                f"sends synthetic sessions dated ahead of now (pacing: {scenario.pacing}, speed {scenario.speed:g}), "
                "which would sit next to them in its session API, metrics and JSONL log. Run benchmarks "
                "against a sidecar of their own, or pass --force")

    def _run_synthetic(self, scenario: SyntheticScenario) -> None:
        try:
            from agentprom.benchmark.synthetic import SyntheticAgent
        except ImportError as exc:
            raise BenchError(f"the synthetic agent needs the OpenTelemetry SDK and its OTLP/HTTP exporter "
                             f"({exc.name} is missing): from the agentprom checkout, "
                             "python3 -m pip install '.[bench]'") from None
        seed = scenario.seed if self.seed is None else self.seed
        limit = self.sessions if self.sessions is not None else scenario.sessions
        until_ms = None if scenario.duration_seconds is None else scenario.duration_seconds * 1000.0
        agent = SyntheticAgent(self.sidecar_url, scenario, self.summary.run_id, clock=self.clock, sleep=self.sleep)
        try:
            start_ms, index = 0, 0
            while limit is None or index < limit:
                if until_ms is not None and start_ms >= until_ms:
                    break
                plan = plan_session(scenario.workload, seed, index, start_ms)
                session_id = self.session_id(index)
                base = {**self._base(index, session_id), "seed": seed}
                began = time.monotonic()
                delivery = agent.emit(plan, session_id)
                fetched = self._fetch(session_id)
                record = session_record(base, fetched.metrics, fetched.detail)
                expected = plan.truth()
                record["expected"] = expected
                differ = mismatches(record, expected) if fetched.metrics is not None else []
                record["mismatches"] = differ
                self.summary.mismatched += bool(differ)
                reason = delivery.error or fetched.reason
                success = reason is None and record["status"] == "completed"
                if not self._finish(record, success, reason, time.monotonic() - began):
                    return
                start_ms, index = plan.next_start_ms, index + 1
        finally:
            agent.close()

    # -- the user's command ----------------------------------------------------------

    def command_env(self, scenario: CommandScenario, index: int, session_id: str) -> dict[str, str]:
        """The run's environment: ours, the harness's settings, then the scenario's ``env`` (which may
        point the agent elsewhere, e.g. at the gRPC port); resource attributes name the session."""
        env = {key: value for key, value in os.environ.items() if key not in OVERRIDDEN}
        env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.client.base,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            ENV_SESSION_ID: session_id,
            ENV_BENCHMARK: scenario.name,
            ENV_RUN_INDEX: str(index),
            ENV_SIDECAR: self.client.base,
        })
        env.update(scenario.env)
        ours = (f"agent.session.id={session_id},agentprom.benchmark.name={scenario.name},"
                f"agentprom.benchmark.run_id={self.summary.run_id}")
        inherited = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip().strip(",")
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"{inherited},{ours}" if inherited else ours
        return env

    def _run_command(self, scenario: CommandScenario) -> None:
        runs = self.sessions if self.sessions is not None else scenario.runs
        cwd = scenario.working_directory()
        if not cwd.is_dir():
            raise BenchError(f"the command's working directory {cwd} does not exist")
        for index in range(runs):
            session_id = self.session_id(index)
            argv = [arg.replace("{python}", sys.executable).replace("{session_id}", session_id)
                    for arg in scenario.command]
            base = self._base(index, session_id)
            began = time.monotonic()
            result = run_command(argv, self.command_env(scenario, index, session_id), cwd,
                                 scenario.timeout_seconds, scenario.kill_grace_seconds, self.log_dir, session_id)
            # the agent is done: a session it left open ends now, as its process ended
            fetched = self._fetch(session_id, end_as="completed" if result.ok else "failed")
            record = session_record(base, fetched.metrics, fetched.detail)
            record["exit_code"] = result.exit_code
            record["timed_out"] = result.timed_out
            reason = _command_failure(result, scenario.timeout_seconds) or fetched.reason
            success = reason is None and record["status"] == "completed"
            if not self._finish(record, success, reason, time.monotonic() - began):
                return


def _command_failure(result: CommandResult, timeout: float) -> str | None:
    if result.start_error:
        return result.start_error
    if result.timed_out:
        return f"timed out after {timeout:g}s; its process group was killed"
    if result.exit_code != 0:
        tail = f": {result.stderr_tail}" if result.stderr_tail else ""
        return f"exited with code {result.exit_code}{tail}"
    return None
