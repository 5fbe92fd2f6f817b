"""Numbers as people read them (fedopt_core.formatting): durations, units for a chart, plurals."""

from __future__ import annotations

import math

from fedopt_core import formatting


def test_durations_read_in_the_unit_that_fits() -> None:
    assert [formatting.duration(s) for s in (0.25, 45, 720, 12_240, 3 * 86400)] == [
        "0.25 s",
        "45 s",
        "12 min",
        "3.4 h",
        "3.0 d",
    ]
    assert formatting.duration(math.inf) == "never" and formatting.duration(math.nan) == "unknown"


def test_one_time_unit_per_chart_follows_the_typical_value() -> None:
    assert formatting.time_unit([30, 50, 70]) == ("s", 1.0)
    assert formatting.time_unit([300, 900, 200_000]) == ("min", 60.0)  # one long outlier does not make it days
    assert formatting.time_unit([7200, 9000]) == ("h", 3600.0)
    assert formatting.time_unit([2e5, 3e5, 4e5]) == ("d", 86400.0)
    assert formatting.time_unit([math.nan, 0.0]) == ("s", 1.0)


def test_a_log_axis_only_where_the_values_span_more_than_ten_times() -> None:
    assert formatting.spans_orders([100, 200], [900, 1100])
    assert not formatting.spans_orders([100, 200], [800, 999])
    assert not formatting.spans_orders([math.nan], [math.inf])


def test_plurals_are_right() -> None:
    assert [formatting.plural(n, "session") for n in (0, 1, 2, 1500)] == [
        "0 sessions",
        "1 session",
        "2 sessions",
        "1,500 sessions",
    ]
