"""The benchmark's figures beside their targets: the table, the JSON and the plot."""

from __future__ import annotations

import json
import operator
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq,
}  # fmt: skip


@dataclass(frozen=True)
class Target:
    op: str
    bound: float
    label: str = ""  # how the bound was set, when it is not a plain number

    def met(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.bound)

    def text(self, unit: str) -> str:
        bound = f"{self.op} {number(self.bound)} {unit}".rstrip()
        return f"{bound} ({self.label})" if self.label else bound


@dataclass
class Figure:
    scenario: str
    name: str
    key: str
    value: float | None  # None: the scenario did not get that far (see note)
    unit: str = ""
    target: Target | None = None
    note: str = ""
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        self.met = (
            None if self.target is None or self.value is None else self.target.met(self.value)
        )

    def verdict(self) -> str:
        if self.value is None:
            return "ERROR"
        if self.met is None:
            return ""
        return "met" if self.met else "NOT MET"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = (
            None
            if self.target is None
            else {**asdict(self.target), "text": self.target.text(self.unit)}
        )
        return data


def number(value: float) -> str:
    """Thousands separated; at most one decimal from 100 up, two below."""
    if value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value else "0"


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` (0-1) of them fall (interpolated)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(figures: list[Figure]) -> str:
    """One row per figure: scenario, figure, measured, target, verdict; notes below."""
    rows = [("Scenario", "Figure", "Measured", "Target", "Result")]
    for figure in figures:
        measured = "-" if figure.value is None else f"{number(figure.value)} {figure.unit}"
        target = figure.target.text(figure.unit) if figure.target else ""
        rows.append((figure.scenario, figure.name, measured.strip(), target, figure.verdict()))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    lines.insert(1, "-+-".join("-" * width for width in widths))
    notes = [f"- {f.scenario}, {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(line.rstrip() for line in [*lines, *([""] if notes else []), *notes])


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any], details: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**meta, "figures": [figure.to_json() for figure in figures], "details": details}
    path.write_text(json.dumps(body, indent=2) + "\n")
