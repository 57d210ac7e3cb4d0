"""Rule segments (R14): the rule language, its validation and member counts over time."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from loyal.engine.execution import to_arrow
from loyal.engine.segments import (
    RuleError,
    compile_rule,
    segment_counts,
    segment_counts_over_time,
    segment_members,
    validate_rule,
)

from .conftest import ts

TABLE = pa.table(
    {
        "customer_id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "city": ["上海", "北京", "上海", None, "上海浦东"],
        "rfm_segment": ["at_risk", "champions", "cant_lose", "at_risk", None],
        "profit": [100.0, 5.0, -3.0, 50.0, None],
        "frequency": pa.array([3, 10, 1, 2, None], pa.int64()),
        "vip": [True, False, None, False, True],
        "joined_at": pa.array(
            [ts("2023-01-01"), ts("2024-03-01"), ts("2024-05-20"), None, ts("2022-12-31 23:00")],
            pa.timestamp("us", tz="UTC"),
        ),
        "birthday": pa.array(
            [dt.date(1990, 1, 1), None, dt.date(2000, 6, 1), dt.date(1985, 3, 3), None]
        ),
    }
)


@pytest.fixture
def customers(duck):
    return duck.create_table("segment_customers", TABLE, overwrite=True)


def members(table, rule) -> list[int]:
    return sorted(to_arrow(segment_members(table, rule)).column("customer_id").to_pylist())


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"field": "city", "op": "=", "value": "上海"}, [1, 3]),
        ({"field": "city", "op": "!=", "value": "上海"}, [2, 4, 5]),  # null city: not 上海
        ({"field": "profit", "op": "<", "value": 5}, [3]),
        ({"field": "profit", "op": "<=", "value": 5}, [2, 3]),
        ({"field": "profit", "op": ">", "value": 50}, [1]),
        ({"field": "frequency", "op": ">=", "value": 3}, [1, 2]),
        ({"field": "rfm_segment", "op": "in", "value": ["at_risk", "cant_lose"]}, [1, 3, 4]),
        ({"field": "rfm_segment", "op": "not_in", "value": ["at_risk"]}, [2, 3, 5]),
        ({"field": "city", "op": "contains", "value": "浦东"}, [5]),
        ({"field": "profit", "op": "is_null"}, [5]),
        ({"field": "city", "op": "not_null"}, [1, 2, 3, 5]),
        ({"field": "frequency", "op": "between", "value": [2, 3]}, [1, 4]),
        ({"field": "vip", "op": "=", "value": True}, [1, 5]),
        ({"field": "joined_at", "op": ">=", "value": "2023-01-01"}, [1, 2, 3]),
        ({"field": "joined_at", "op": "<", "value": "2023-01-01T08:00+08:00"}, [5]),
        ({"field": "birthday", "op": "between", "value": ["1980-01-01", "1995-12-31"]}, [1, 4]),
    ],
)
def test_each_operator(customers, rule, expected):
    assert members(customers, rule) == expected


def test_nested_all_any_not(customers):
    rule = {
        "all": [
            {"field": "rfm_segment", "op": "in", "value": ["at_risk", "cant_lose"]},
            {
                "any": [
                    {"field": "city", "op": "=", "value": "上海"},
                    {"field": "profit", "op": ">", "value": 10},
                ]
            },
            {"not": {"field": "vip", "op": "=", "value": True}},
        ]
    }
    # at_risk/cant_lose: 1, 3, 4; in 上海 or profit > 10: 1, 3, 4; not vip: 2, 3, 4 (null vip
    # is not "vip = true", so 3 qualifies).
    assert members(customers, rule) == [3, 4]


def test_rules_are_plain_json(customers):
    import json

    rule = json.loads('{"any": [{"field": "city", "op": "=", "value": "北京"}]}')
    assert members(customers, rule) == [2]


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"field": "citty", "op": "=", "value": "x"}, "rule.field", "unknown field 'citty'"),
        ({"field": "city", "op": "~", "value": "x"}, "rule.op", "unknown op '~'"),
        ({"all": [{"field": "city", "op": "=", "value": 3}]}, "rule.all[0].value", "3"),
        ({"all": []}, "rule.all", "non-empty list"),
        ({"field": "city", "op": "in", "value": "上海"}, "rule.value", "non-empty list"),
        ({"field": "city", "op": "is_null", "value": 1}, "rule.value", "takes no value"),
        ({"field": "city", "op": "="}, "rule.value", "needs a value"),
        ({"field": "profit", "op": "contains", "value": "1"}, "rule.op", "text field"),
        ({"field": "profit", "op": "between", "value": [5, 1]}, "rule.value", "above high"),
        ({"field": "profit", "op": "=", "value": None}, "rule.value", "is_null"),
        ({"field": "joined_at", "op": ">", "value": "soon"}, "rule.value", "ISO"),
        ({"field": "vip", "op": "<", "value": True}, "rule.op", "yes/no"),
        ({"any": [{"not": {"field": "x", "op": "="}}]}, "rule.any[0].not.field", "'x'"),
        ({"all": [], "any": []}, "rule", "exactly one key"),
        (["city"], "rule", "must be an object"),
        ({"field": "city", "op": "=", "value": "x", "extra": 1}, "rule", "extra"),
    ],
)
def test_validation_names_the_bad_part(customers, rule, path, message):
    with pytest.raises(RuleError) as error:
        validate_rule(rule, customers.schema())
    assert error.value.path == path
    assert message in str(error.value)


def test_compile_validates_first(customers):
    with pytest.raises(RuleError, match="unknown field"):
        compile_rule({"field": "nope", "op": "is_null"}, customers)


def test_segment_counts_and_counts_over_time(customers):
    rules = {
        "shanghai": {"field": "city", "op": "contains", "value": "上海"},
        "risky": {"field": "rfm_segment", "op": "=", "value": "at_risk"},
    }
    got = {r["segment"]: r for r in to_arrow(segment_counts(customers, rules)).to_pylist()}
    assert (got["shanghai"]["members"], got["risky"]["members"], got["risky"]["customers"]) == (
        3,
        2,
        5,
    )

    def build(as_of: dt.datetime) -> ibis.Table:
        # The table as it stood at as_of: customers who had joined by then.
        return customers.filter(customers.joined_at < as_of)

    dates = [ts("2023-06-01"), ts("2024-06-01")]
    rows = to_arrow(segment_counts_over_time(build, rules, dates)).to_pylist()
    table = {(str(r["as_of"]), r["segment"]): r["members"] for r in rows}
    # Joined before 2023-06-01: 1 and 5 (both 上海, 1 at risk); by 2024-06-01 also 2 and 3.
    assert table == {
        ("2023-06-01", "risky"): 1,
        ("2023-06-01", "shanghai"): 2,
        ("2024-06-01", "risky"): 1,
        ("2024-06-01", "shanghai"): 3,
    }


def test_segment_counts_name_the_bad_segment(customers):
    with pytest.raises(RuleError, match="segment 'bad'"):
        segment_counts(customers, {"bad": {"field": "city", "op": "??", "value": 1}})
