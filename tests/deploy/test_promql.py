"""The PromQL rewriting the live Prometheus test relies on."""

from __future__ import annotations

from tests.deploy.promql import as_bool, fill_grafana_variables, signals, split_unless


def test_comparisons_become_bool_comparisons() -> None:
    assert as_bool("max by (q) (x) > 100 and y >= 0") == "max by (q) (x) > bool 100 and y >= bool 0"


def test_label_matchers_are_left_alone() -> None:
    expr = 'sum(rate(x{status=~"5..", a!="b", c="x>y"}[5m])) == 0'
    assert as_bool(expr) == 'sum(rate(x{status=~"5..", a!="b", c="x>y"}[5m])) == bool 0'


def test_existing_bool_is_not_doubled() -> None:
    assert as_bool("x > bool 1") == "x > bool 1"


def test_unless_operands_are_checked_separately_without_their_modifier() -> None:
    expr = "max by (h) (a) >= 0\nunless on (job, h)\nmax by (h) (b)"
    assert split_unless(expr) == ["max by (h) (a) >= 0", "max by (h) (b)"]
    assert signals(expr) == ["max by (h) (a) >= bool 0", "max by (h) (b)"]


def test_unless_inside_parentheses_is_not_split() -> None:
    assert split_unless("(a unless b) > 1") == ["(a unless b) > 1"]


def test_grafana_variables_are_filled_longest_name_first() -> None:
    expr = 'x{job="$job", q=~"${queue_name}"}[$__rate_interval] $job_extra'
    filled = fill_grafana_variables(expr, {"job": "j", "job_extra": "E", "queue_name": ".*",
                                           "__rate_interval": "1m"})
    assert filled == 'x{job="j", q=~".*"}[1m] E'
