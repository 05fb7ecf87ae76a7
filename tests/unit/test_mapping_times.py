"""Time attributes with UTC offsets in minutes: every offset Segment's sources
write (+05:30 India, -09:30 Marquesas, +0545 Nepal) arrives as the same instant in UTC."""

import pytest

from destinations.services.mapping import NOT_A_TIME
from tests.unit.test_mapping import T, refusal, sent


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2024-03-01T10:30:00+05:30", "2024-03-01T05:00:00Z"),
        ("2024-03-01T10:30:00+0545", "2024-03-01T04:45:00Z"),
        ("2024-03-01T10:30:00-09:30", "2024-03-01T20:00:00Z"),
        ("2024-03-01T10:30:00+23:59", "2024-02-29T10:31:00Z"),
        ("2024-03-01T10:30:00.250+05:30", "2024-03-01T05:00:00.25Z"),
    ],
)
def test_offsets_with_minutes_are_applied(value, utc):
    assert sent(value, T.TIME) == utc


@pytest.mark.parametrize("offset", ["+05:60", "+0560", "-00:99", "+24:00", "+2400"])
def test_offsets_beyond_a_day_or_an_hour_are_refused(offset):
    assert NOT_A_TIME in refusal(f"2024-03-01T10:30:00{offset}", T.TIME)
