"""Render the series store as Prometheus text (0.0.4) or OpenMetrics 1.0.

Rendering and ingestion share one event loop, so a slow scrape stalls
ingestion (measured here: prometheus_client's ``generate_latest`` needs about
0.9 s for 10k catalog series). This renderer works from the store's own state:
each series caches its formatted lines until it is next updated, family
headers and label text are built once, and a scrape joins cached strings.

Formats: https://prometheus.io/docs/instrumenting/exposition_formats/ and the
OpenMetrics 1.0 specification (counter families are named without ``_total``
in ``# TYPE``; exemplars only in OpenMetrics; the body ends with ``# EOF``).
"""

from __future__ import annotations

import math
from itertools import accumulate

from prometheus_client.utils import floatToGoString

from agentprom.metrics.catalog import COUNTER, GAUGE, HISTOGRAM
from agentprom.metrics.dynamic import INFO, SUMMARY, DynamicFamily, DynamicSeries
from agentprom.metrics.series_store import OVERFLOW_LABEL, Exemplar, Family, Series, SeriesStore

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def format_value(value: float) -> str:
    """A sample value as Prometheus expects it (integers without a fraction)."""
    if isinstance(value, int):
        return str(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_bound(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.1``, ``1.0``, ``1.048576e+06``,
    ``+Inf``), so ``le`` values match what other Python exporters emit."""
    return floatToGoString(bound)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def _exemplar_text(exemplar: Exemplar | None) -> str:
    if exemplar is None:
        return ""
    return (
        f' # {{trace_id="{exemplar.trace_id}",span_id="{exemplar.span_id}"}} '
        f"{format_value(exemplar.value)} {exemplar.timestamp:.3f}"
    )


class _Copy:
    """What formatting reads of a series, copied at a snapshot's instant."""

    __slots__ = ("labels", "label_text", "value", "counts", "sum", "exemplars", "bounds", "quantiles", "count",
                 "has_sum")


class Snapshot:
    """One instant's exposition whose changed series are formatted afterwards, in steps.

    ``parts`` holds every piece; the piece of a histogram or summary series (in OpenMetrics, of a
    counter series too) whose lines were not cached is empty until ``format`` fills it from the copy
    taken at the instant (``later``; the other series are formatted at the instant, which costs
    about what a copy would: ``FamilyRenderer.deferred``), so the body is
    that instant's counter set however long formatting takes and whatever is counted
    meanwhile. While it waits, the series' cache slot holds this snapshot as a mark; an update
    resets the slot, so lines formatted from a copy are cached only if the series did not
    change since, and only by the snapshot that marked it last.
    """

    __slots__ = ("openmetrics", "slot", "parts", "later", "done")

    def __init__(self, openmetrics: bool) -> None:
        self.openmetrics = openmetrics
        #: the series' cache slot of this format, which holds the mark
        self.slot = "om" if openmetrics else "text"
        self.parts: list[str] = []
        #: (index in ``parts``, renderer, series, copy) of each series still to format
        self.later: list[tuple[int, FamilyRenderer, Series, _Copy]] = []
        self.done = 0

    def format(self, budget: int | None = None) -> bool:
        """Format up to ``budget`` of the waiting series (all when None); True once none waits."""
        later, parts, openmetrics, slot = self.later, self.parts, self.openmetrics, self.slot
        end = len(later) if budget is None else min(len(later), self.done + budget)
        for index, renderer, series, copy in later[self.done:end]:
            text = parts[index] = renderer.render_series(copy, openmetrics)  # type: ignore[arg-type]
            if getattr(series, slot) is self:
                setattr(series, slot, text)
        self.done = end
        if end < len(later):
            return False
        later.clear()
        return True

    def abandon(self) -> None:
        """Take this snapshot's marks off the series it did not format (a scrape that failed
        half-way), so that none of them keeps it alive."""
        slot = self.slot
        for _index, _renderer, series, _copy in self.later[self.done:]:
            if getattr(series, slot) is self:
                setattr(series, slot, None)
        self.later.clear()


class FamilyRenderer:
    """Cached pieces of one family's exposition."""

    def __init__(self, family: Family) -> None:
        spec = family.spec
        self.family = family
        self.name = spec.name
        self.type = spec.type
        self.label_names = spec.labels
        om_name = spec.name[: -len("_total")] if spec.type == COUNTER else spec.name
        self.text_header = (
            f"# HELP {spec.name} {escape_help(spec.help, False)}\n# TYPE {spec.name} {spec.type}\n"
        )
        self.om_header = f"# HELP {om_name} {escape_help(spec.help, True)}\n# TYPE {om_name} {spec.type}\n"
        self.bounds = [format_bound(b) for b in spec.buckets] + ["+Inf"]
        self.le_parts = [f'le="{bound}"}} ' for bound in self.bounds]
        #: whether a snapshot formats this family's changed series later, from copies (text, OpenMetrics):
        #: a histogram's lines cost ten times its copy, an OpenMetrics counter line with its exemplar
        #: three times; a gauge's line, or a counter's without exemplar, costs about what a copy would
        self.deferred = (spec.type == HISTOGRAM, spec.type in (HISTOGRAM, COUNTER))

    def label_text(self, series: Series) -> str:
        """The text inside the braces for a series, without ``le``."""
        if series is self.family.overflow:
            pairs = [f'{name}=""' for name in self.label_names] + [f'{OVERFLOW_LABEL}="true"']
        else:
            pairs = [f'{name}="{escape_label_value(value)}"' for name, value in zip(self.label_names, series.labels)]
        return ",".join(pairs)

    def render_series(self, series: Series, openmetrics: bool) -> str:
        labels = series.label_text
        if labels is None:
            labels = series.label_text = self.label_text(series)
        exemplars = series.exemplars if openmetrics else None
        if self.type != HISTOGRAM:
            braces = f"{{{labels}}}" if labels else ""
            tail = _exemplar_text(exemplars[0]) if exemplars else ""
            return f"{self.name}{braces} {format_value(series.value)}{tail}\n"
        name = self.name
        prefix = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
        cumulative = list(accumulate(series.counts))
        if type(cumulative[-1]) is not int:
            # Weighted (sampling-scaled) observations make counts fractional, but OpenMetrics
            # requires integers: render the nearest. Rounding the exact cumulative totals keeps
            # the error below 0.5 per series instead of accumulating it.
            cumulative = [round(c) for c in cumulative]
        if exemplars:
            lines = [
                f"{prefix}{le}{count}{_exemplar_text(exemplar)}\n"
                for le, count, exemplar in zip(self.le_parts, cumulative, exemplars)
            ]
        else:
            lines = [f"{prefix}{le}{count}\n" for le, count in zip(self.le_parts, cumulative)]
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_count{braces} {cumulative[-1]}\n")
        lines.append(f"{name}_sum{braces} {format_value(series.sum)}\n")
        return "".join(lines)

    def freeze(self, series: Series, openmetrics: bool) -> _Copy:
        """What ``render_series`` reads of ``series``, copied now (a ``Snapshot`` formats it later)."""
        copy = _Copy()
        copy.labels = series.labels
        label_text = series.label_text
        copy.label_text = self.frozen_label_text(series) if label_text is None else label_text
        copy.value = series.value
        copy.sum = series.sum
        counts = series.counts
        copy.counts = None if counts is None else counts.copy()
        exemplars = series.exemplars
        # the list, not its exemplars: a later span of the same bucket may replace one in place before
        # it is formatted (series_store.py, above ``Series``), which still makes it that bucket's exemplar
        copy.exemplars = None if exemplars is None or not openmetrics else exemplars.copy()
        return copy

    def frozen_label_text(self, series: Series) -> str:
        """The series' label text for a copy (cached on the series: a catalog family's labels never change)."""
        if series.label_text is None:
            series.label_text = self.label_text(series)
        return series.label_text

    def render(self, parts: list[str], openmetrics: bool, snapshot: Snapshot | None = None) -> None:
        """Append the family's pieces. A series whose lines are not cached is formatted now, or,
        with a ``snapshot`` and when the family is ``deferred``, copied into it and given an empty
        piece that ``Snapshot.format`` fills."""
        family = self.family
        if not len(family):
            return
        parts.append(self.om_header if openmetrics else self.text_header)
        render = self.render_series
        later = snapshot.later if snapshot is not None and self.deferred[openmetrics] else None
        if openmetrics:
            for series in family.all_series():
                text = series.om
                if text.__class__ is not str:
                    if later is None:
                        text = series.om = render(series, True)
                    else:
                        series.om = snapshot
                        later.append((len(parts), self, series, self.freeze(series, True)))
                        text = ""
                parts.append(text)
        else:
            for series in family.all_series():
                text = series.text
                if text.__class__ is not str:
                    if later is None:
                        text = series.text = render(series, False)
                    else:
                        series.text = snapshot
                        later.append((len(parts), self, series, self.freeze(series, False)))
                        text = ""
                parts.append(text)


class DynamicFamilyRenderer(FamilyRenderer):
    """A family registered at run time (``metrics.dynamic``): label names can grow,
    histogram bounds are per series, and it may be a summary or an info family.

    Empty label values are left out (Prometheus treats them as absent). In
    OpenMetrics a counter whose name lacks ``_total`` (names kept untranslated)
    is typed ``unknown``, the info family ``target_info`` is ``# TYPE target
    info``, and ``# UNIT`` is written when the name ends with the unit.
    """

    def __init__(self, family: DynamicFamily) -> None:  # not super().__init__: that reads catalog specs
        spec = family.spec
        self.family = family  # type: ignore[assignment]
        self.name = spec.name
        self.type = spec.type
        om_name, om_type = spec.name, spec.type
        if spec.type == COUNTER:
            om_name, om_type = (spec.name[: -len("_total")], COUNTER) if spec.name.endswith("_total") else (
                spec.name, "unknown")
        elif spec.type == INFO:
            om_name = spec.name[: -len("_info")]
        text_type = GAUGE if spec.type == INFO else spec.type
        self.text_header = f"# HELP {spec.name} {escape_help(spec.help, False)}\n# TYPE {spec.name} {text_type}\n"
        unit = f"# UNIT {om_name} {spec.unit}\n" if spec.unit and om_name.endswith("_" + spec.unit) else ""
        self.om_header = f"# HELP {om_name} {escape_help(spec.help, True)}\n# TYPE {om_name} {om_type}\n{unit}"
        #: OpenMetrics allows exemplars on counters and histogram buckets only
        self.exemplars = om_type in (COUNTER, HISTOGRAM)
        self.deferred = (spec.type in (HISTOGRAM, SUMMARY), spec.type in (HISTOGRAM, SUMMARY, COUNTER))

    def label_text(self, series: Series) -> str:
        return ",".join(
            f'{name}="{escape_label_value(value)}"'
            for name, value in zip(self.family.spec.labels, series.labels)
            if value
        )

    def frozen_label_text(self, series: Series) -> str:
        """Made now, not cached (a run-time series' ``label_text`` stays None): a family that gains a
        label name re-sorts its names (``DynamicFamily.widen``), so the text must be the instant's."""
        return self.label_text(series)

    def freeze(self, series: DynamicSeries, openmetrics: bool) -> _Copy:  # type: ignore[override]
        copy = super().freeze(series, openmetrics)
        copy.bounds, copy.quantiles, copy.count, copy.has_sum = series.bounds, series.quantiles, series.count, series.has_sum
        return copy

    def render_series(self, series: DynamicSeries | _Copy, openmetrics: bool) -> str:  # type: ignore[override]
        labels = series.label_text if series.__class__ is _Copy else self.label_text(series)
        braces = f"{{{labels}}}" if labels else ""
        name = self.name
        exemplars = series.exemplars if openmetrics and self.exemplars else None
        if self.type == HISTOGRAM:
            prefix = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
            lines = []
            cumulative = 0
            bounds = [format_bound(b) for b in series.bounds] + ["+Inf"]
            for i, (bound, count) in enumerate(zip(bounds, series.counts)):
                cumulative += count
                tail = _exemplar_text(exemplars[i]) if exemplars else ""
                lines.append(f'{prefix}le="{bound}"}} {cumulative}{tail}\n')
            lines.append(f"{name}_count{braces} {cumulative}\n")
            if series.has_sum:
                lines.append(f"{name}_sum{braces} {format_value(series.sum)}\n")
            return "".join(lines)
        if self.type == SUMMARY:
            prefix = f"{name}{{{labels}," if labels else f"{name}{{"
            lines = [f'{prefix}quantile="{format_bound(q)}"}} {format_value(v)}\n' for q, v in series.quantiles]
            lines.append(f"{name}_count{braces} {series.count}\n")
            lines.append(f"{name}_sum{braces} {format_value(series.sum)}\n")
            return "".join(lines)
        tail = _exemplar_text(exemplars[0]) if exemplars else ""
        return f"{name}{braces} {format_value(series.value)}{tail}\n"


class Renderer:
    """Renders a ``SeriesStore``; keeps per-family cached headers."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self._families: dict[str, FamilyRenderer] = {}

    def _renderer(self, family: Family) -> FamilyRenderer:
        if isinstance(family, DynamicFamily):  # its renderer lives and dies with it
            if family.renderer is None:
                family.renderer = DynamicFamilyRenderer(family)
            return family.renderer
        renderer = self._families.get(family.name)
        if renderer is None or renderer.family is not family:
            renderer = self._families[family.name] = FamilyRenderer(family)
        return renderer

    def snapshot(self, openmetrics: bool = False) -> Snapshot:
        """The store's exposition at this instant, read in one go (no await) like ``parts``, but
        with the series that changed since their lines were last formatted copied rather than
        formatted: ``Snapshot.format`` formats them afterwards, in steps."""
        snapshot = Snapshot(openmetrics)
        for family in self.store.families.values():
            self._renderer(family).render(snapshot.parts, openmetrics, snapshot)
        return snapshot

    def parts(self, openmetrics: bool = False) -> list[str]:
        """The store's exposition as the list of its pieces, read in one go (no await), so it is
        one instant's counter set. The pieces are immutable strings: joining them later, even
        after the store has moved on, still gives that instant's exposition."""
        parts: list[str] = []
        for family in self.store.families.values():
            self._renderer(family).render(parts, openmetrics)
        return parts

    def render(self, openmetrics: bool = False) -> str:
        """The store's exposition (without the OpenMetrics ``# EOF`` terminator)."""
        return "".join(self.parts(openmetrics))
