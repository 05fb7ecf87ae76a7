"""The golden cases in tests/data/mapping: the examples of docs/mapping.md, run as tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from destinations.services import mapping
from destinations.services.mapping import AttributeRule, AttributeType, MappingConfig, map_identify

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "data" / "mapping"
DOC = ROOT / "docs" / "mapping.md"
CASES = sorted(CASES_DIR.glob("*.json"))
CASE_KEYS = {
    "description",
    "rules",
    "forward_engage",
    "event",
    "expected_attributes",
    "expected_notes",
}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _canonical(value: Any) -> str:
    # Compares JSON texts, not Python values: 1 == 1.0 == True in Python, not in the body sent.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_golden_case(path: Path) -> None:
    case = _load(path)
    assert set(case) == CASE_KEYS
    config = MappingConfig(
        rules=tuple(AttributeRule(r["name"], AttributeType(r["type"])) for r in case["rules"]),
        forward_engage=case["forward_engage"],
    )

    result = map_identify(case["event"], config)

    assert _canonical(result.attributes) == _canonical(case["expected_attributes"])
    notes = [{"attribute": n.attribute, "reason": n.reason} for n in result.notes]
    assert notes == case["expected_notes"]


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_golden_case_is_in_the_doc(path: Path) -> None:
    assert f"`{path.name}`" in DOC.read_text(encoding="utf-8")


def test_every_reason_text_is_in_the_doc() -> None:
    doc = DOC.read_text(encoding="utf-8")
    texts = {
        name: value
        for name, value in vars(mapping).items()
        if name.isupper() and isinstance(value, str)
    }
    missing = [name for name, text in texts.items() if text not in doc]
    assert not missing
