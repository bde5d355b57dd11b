"""A strict parser of the Prometheus text exposition format 0.0.4, enough to hold /metrics to it.

Every line must be a HELP or TYPE comment, blank, or a sample `name{label="value",...} value`; every
sample must belong to a family declared by a TYPE line before it, families must not be interleaved,
and histograms must have cumulative buckets ending in `le="+Inf"` equal to their `_count`.
"""

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_VALUE = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN)"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*,?)?\}})? (?P<value>{_VALUE})(?: -?[0-9]+)?$")
_HELP = re.compile(rf"^# HELP (?P<name>{_NAME}) .*$")
_TYPE = re.compile(rf"^# TYPE (?P<name>{_NAME}) (?P<kind>counter|gauge|histogram|summary|untyped)$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class ExpositionError(ValueError):
    pass


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def matching(self, name: str, **labels: str) -> list[float]:
        return [
            value for sample, sample_labels, value in self.samples if sample == name and labels.items() <= sample_labels.items()
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum over every sample of `name` carrying `labels` (0 when none)."""
        return sum(self.matching(name, **labels))


def parse_prometheus(text: str) -> Exposition:
    exposition = Exposition()
    finished: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        if line.startswith("#"):
            if match := _TYPE.match(line):
                name = match["name"]
                if name in exposition.types:
                    raise ExpositionError(f"line {number}: second TYPE for {name}")
                exposition.types[name] = match["kind"]
            elif not _HELP.match(line):
                raise ExpositionError(f"line {number}: malformed comment {line!r}")
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ExpositionError(f"line {number}: not a sample {line!r}")
        name = match["name"]
        family = _family_of(name, exposition.types)
        if family is None:
            raise ExpositionError(f"line {number}: {name} has no TYPE before it")
        if family != current:
            if family in finished:
                raise ExpositionError(f"line {number}: samples of {family} are not contiguous")
            if current is not None:
                finished.add(current)
            current = family
        labels = {
            key: value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for key, value in _LABEL_PAIR.findall(match["labels"] or "")
        }
        exposition.samples.append((name, labels, _float(match["value"])))
    _check_histograms(exposition)
    return exposition


def _family_of(name: str, types: dict[str, str]) -> str | None:
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and types.get(base) in ("histogram", "summary"):
            return base
    return None


def _float(text: str) -> float:
    return {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(text) or float(text)


def _check_histograms(exposition: Exposition) -> None:
    buckets: dict[tuple[str, tuple], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[tuple[str, tuple], float] = {}
    for name, labels, value in exposition.samples:
        if name.endswith("_bucket"):
            if "le" not in labels:
                raise ExpositionError(f"{name} without le")
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            buckets[(name.removesuffix("_bucket"), rest)].append((_float(labels["le"]), value))
        elif name.endswith("_count"):
            counts[(name.removesuffix("_count"), tuple(sorted(labels.items())))] = value
    for key, series in buckets.items():
        bounds = [bound for bound, _ in series]
        values = [value for _, value in series]
        if bounds != sorted(bounds) or bounds[-1] != math.inf:
            raise ExpositionError(f"{key}: buckets not ascending to +Inf")
        if values != sorted(values):
            raise ExpositionError(f"{key}: buckets not cumulative")
        if counts.get(key) != values[-1]:
            raise ExpositionError(f"{key}: +Inf bucket {values[-1]} != count {counts.get(key)}")
