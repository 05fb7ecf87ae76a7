import pytest

from talon_sandbox.attributes import (
    ATTRIBUTE_TYPES,
    parse_attribute_flags,
    value_matches,
)


@pytest.mark.parametrize(
    ("type_name", "value", "valid"),
    [
        ("string", "", True),
        ("number", 0, True),
        ("number", -1.5e10, True),
        ("number", False, False),
        ("boolean", 1, False),
        ("time", "2024-02-29T23:59:59.999999Z", True),
        ("time", "2024-02-29t23:59:59z", True),
        ("time", "2024-02-30T00:00:00Z", False),
        ("time", "2024-02-01T00:00:00-05:30", True),
        ("time", "2024-02-01", False),
        ("time", "", False),
        ("location", "somewhere", True),
        ("(list number)", [], True),
        ("(list time)", ["2024-02-01T00:00:00+01:00"], True),
        ("(list location)", [None], False),
    ],
)
def test_value_matches(type_name: str, value: object, valid: bool) -> None:
    assert value_matches(type_name, value) is valid


def test_every_documented_type_is_known() -> None:
    assert set(ATTRIBUTE_TYPES) == {
        "string",
        "number",
        "boolean",
        "time",
        "location",
        "(list string)",
        "(list number)",
        "(list time)",
        "(list location)",
    }


def test_parse_attribute_flags() -> None:
    assert parse_attribute_flags(["age:number", "tags: (list string)"]) == {
        "age": "number",
        "tags": "(list string)",
    }


@pytest.mark.parametrize(
    ("flag", "problem"),
    [("age", "expected NAME:TYPE"), ("age:int", "unknown type"), ("my-attr:string", "invalid")],
)
def test_parse_attribute_flags_rejects(flag: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_attribute_flags([flag])
