"""The benchmark scenario file: typed models for both kinds (synthetic, command) and the loader.

Like the sidecar's configuration (config/loader.py, whose ``Problem`` and
``ConfigError`` report the errors), a scenario is validated completely at load:
unknown keys are rejected and every problem is reported at once with its
dotted path, e.g. ``workload.llm.duration_ms.lognormal.p95``. docs/bench.md
documents every key.
"""

from __future__ import annotations

import math
import random
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from agentprom.config.loader import ConfigError, Problem, read_yaml, validate_model

WHAT = "benchmark scenario"
KINDS = ("synthetic", "command")
#: benchmark names end up in session ids and OTEL_RESOURCE_ATTRIBUTES: keep them plain
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: the 95th percentile of the standard normal distribution (lognormal's p95 = median * e^(1.645 sigma))
Z95 = 1.6448536269514722


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


# -- distributions -----------------------------------------------------------------------
# Every sample is clamped to [min, max] (min defaults to 0: durations and token counts are
# never negative). A bare number in the YAML is a constant.


class _Bounded(_Model):
    min: float = Field(0.0, ge=0, description="Samples below are raised to this.")
    max: float | None = Field(None, ge=0, description="Samples above are lowered to this (none = no cap).")

    def clamp(self, value: float) -> float:
        value = max(self.min, value)
        return value if self.max is None else min(self.max, value)

    @model_validator(mode="after")
    def _ordered(self) -> _Bounded:
        if self.max is not None and self.max < self.min:
            raise ValueError("max must not be less than min")
        return self


class Constant(_Model):
    distribution: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        return self.value


class Uniform(_Bounded):
    """Uniform between ``min`` and ``max`` (both required)."""

    distribution: Literal["uniform"]
    max: float = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max)


class Normal(_Bounded):
    distribution: Literal["normal"]
    mean: float = Field(ge=0)
    stddev: float = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        return self.clamp(rng.gauss(self.mean, self.stddev))


class LogNormal(_Bounded):
    """Right-skewed, as latencies are: given by its median and 95th percentile."""

    distribution: Literal["lognormal"]
    median: float = Field(gt=0)
    p95: float = Field(gt=0)

    @model_validator(mode="after")
    def _p95_above_median(self) -> LogNormal:
        if self.p95 < self.median:
            raise ValueError("p95 must not be less than median")
        return self

    def sample(self, rng: random.Random) -> float:
        sigma = math.log(self.p95 / self.median) / Z95
        return self.clamp(rng.lognormvariate(math.log(self.median), sigma))


class Exponential(_Bounded):
    distribution: Literal["exponential"]
    mean: float = Field(gt=0)

    def sample(self, rng: random.Random) -> float:
        return self.clamp(rng.expovariate(1.0 / self.mean))


def _number_is_constant(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"distribution": "constant", "value": value}
    return value


Distribution = Annotated[
    Constant | Uniform | Normal | LogNormal | Exponential,
    Field(discriminator="distribution"),
    BeforeValidator(_number_is_constant),
]


class CountRange(_Model):
    """A whole number drawn uniformly from ``min`` to ``max`` inclusive (a bare integer is fixed)."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> CountRange:
        if self.max < self.min:
            raise ValueError("max must not be less than min")
        return self

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.min, self.max)


def _int_is_fixed(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"min": value, "max": value}
    return value


Count = Annotated[CountRange, BeforeValidator(_int_is_fixed)]


# -- the synthetic agent's workload -------------------------------------------------------


class Tool(_Model):
    weight: float = Field(1.0, gt=0, description="Relative frequency among the phase's tools.")
    failure_probability: Probability = Field(0.0, description="Chance that one attempt fails.")
    error_type: str = Field("ToolError", min_length=1, description="error.type of failed attempts.")
    duration_ms: Distribution = Field(default_factory=lambda: Constant(value=100))


class Llm(_Model):
    model: str = Field("gpt-4o", min_length=1)
    provider: str = Field("openai", min_length=1)
    failure_probability: Probability = 0.0
    error_type: str = Field("RateLimitError", min_length=1)
    duration_ms: Distribution = Field(default_factory=lambda: Constant(value=1000))
    input_tokens: Distribution = Field(default_factory=lambda: Constant(value=1000))
    output_tokens: Distribution = Field(default_factory=lambda: Constant(value=200))
    context_window: int = Field(
        128_000, ge=0, description="Reported as agent.context.tokens_available with the call's input tokens as "
        "tokens_used (0 = not reported).",
    )
    context_reset_probability: Probability = Field(0.0, description="Chance of an agent.context_reset per call.")


class Retry(_Model):
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts per call, the first included.")
    probability: Probability = Field(1.0, description="Chance that a failed attempt is retried at all.")
    backoff_ms: Distribution = Field(default_factory=lambda: Constant(value=200))


class PhaseSpec(_Model):
    name: str = Field(min_length=1, max_length=64)
    llm_calls: Count = Field(default_factory=lambda: CountRange(min=1, max=1))
    tool_calls: Count = Field(default_factory=lambda: CountRange(min=1, max=1))
    tools: tuple[str, ...] | None = Field(None, description="The tools this phase uses (default: all).")
    reruns: int = Field(0, ge=0, le=10, description="A failed phase runs again up to this many times.")


class Workload(_Model):
    agent: str = Field("bench-agent", min_length=1, description="gen_ai.agent.name and service.name.")
    phases: tuple[PhaseSpec, ...]
    tools: dict[str, Tool] = Field(default_factory=dict)
    llm: Llm = Field(default_factory=Llm)
    retry: Retry = Field(default_factory=Retry)
    think_time_ms: Distribution = Field(default_factory=lambda: Constant(value=20))
    session_gap_ms: Distribution = Field(default_factory=lambda: Constant(value=1000))
    continue_after_failure: bool = Field(False, description="Run the remaining phases after a phase failed.")

    @field_validator("phases")
    @classmethod
    def _some_phase(cls, value: tuple[PhaseSpec, ...]) -> tuple[PhaseSpec, ...]:
        if not value:
            raise ValueError("at least one phase is required")
        return value

    @model_validator(mode="after")
    def _phase_tools_exist(self) -> Workload:
        problems = []
        for index, phase in enumerate(self.phases):
            unknown = [name for name in phase.tools or () if name not in self.tools]
            if unknown:
                problems.append(f"phases.{index}.tools names unknown tool(s) {', '.join(unknown)} "
                                f"(defined: {', '.join(self.tools) or 'none'})")
            elif phase.tool_calls.max > 0 and not (phase.tools if phase.tools is not None else self.tools):
                problems.append(f"phases.{index} ({phase.name}) makes tool calls but has no tools to call")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# -- scenarios ---------------------------------------------------------------------------


class _Scenario(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="The benchmark_name of every record.")
    kind: str
    description: str = ""
    record_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="How long to wait for the sidecar to show a session as ended.",
    )
    #: set by ``load_scenario``: relative paths (command cwd) are taken from the file's folder
    base_dir: str = Field("", exclude=True)


class SyntheticScenario(_Scenario):
    kind: Literal["synthetic"]
    seed: int = Field(1, description="The same seed plans the same sessions.")
    sessions: int | None = Field(None, ge=1, description="Stop after this many sessions.")
    duration_seconds: float | None = Field(
        None, gt=0, description="Stop starting sessions after this much agent time (simulated or paced).",
    )
    pacing: Literal["simulated", "realtime"] = Field(
        "simulated", description="simulated: emit as fast as possible with planned timestamps; realtime: "
        "send each span when its planned end is reached on the wall clock (scaled by speed).",
    )
    speed: float = Field(1.0, gt=0, le=1e6, description="realtime only: agent seconds per wall-clock second.")
    export_timeout_seconds: float = Field(10.0, gt=0, le=600, description="OTLP export request timeout.")
    workload: Workload

    @model_validator(mode="after")
    def _bounded(self) -> SyntheticScenario:
        if self.sessions is None and self.duration_seconds is None:
            raise ValueError("the run must be bounded: give sessions, duration_seconds or both")
        return self


class CommandScenario(_Scenario):
    kind: Literal["command"]
    command: tuple[str, ...] = Field(
        min_length=1, description="The agent's command line, as a list (no shell) or a string split like a "
        "shell would; '{python}' in an argument is the Python running agentprom.",
    )
    runs: int = Field(1, ge=1, le=100_000, description="How many times to run it (one session each).")
    timeout_seconds: float = Field(300.0, gt=0, description="A run still going after this is killed and failed.")
    kill_grace_seconds: float = Field(
        2.0, ge=0, le=600, description="Between SIGTERM and SIGKILL to the run's process group at the timeout.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the command.")
    cwd: str | None = Field(None, description="Working directory, relative to the scenario file (default its folder).")

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split the command line: {exc}") from None
        return value

    def working_directory(self) -> Path:
        base = Path(self.base_dir or ".")
        return base / self.cwd if self.cwd else base


Scenario = SyntheticScenario | CommandScenario


def parse_scenario(document: dict[str, Any], origin: str = "", base_dir: str | Path = "") -> Scenario:
    """Validate a scenario document; ``ConfigError`` lists every problem with its path."""
    kind = document.get("kind")
    if kind not in KINDS:
        problems = [Problem("kind", f"is required and must be one of {', '.join(KINDS)}", kind)]
        if not isinstance(document.get("name"), str):
            problems.append(Problem("name", "is required", document.get("name")))
        raise ConfigError(problems, origin, WHAT)
    model = SyntheticScenario if kind == "synthetic" else CommandScenario
    if "base_dir" in document:
        raise ConfigError([Problem("base_dir", "unknown key (not part of the schema)")], origin, WHAT)
    return validate_model(model, {**document, "base_dir": str(base_dir)}, origin, what=WHAT)


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    return parse_scenario(read_yaml(path, WHAT), str(path), path.resolve().parent)
