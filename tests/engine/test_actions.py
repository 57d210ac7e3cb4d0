"""Next best action (R19, R12, R25): one rule per case, priorities, and DuckDB/Spark parity."""

from __future__ import annotations

from typing import Any

import ibis
import pyarrow as pa
import pytest

from loyal.engine import actions, basket
from loyal.engine.actions import ActionSettings
from loyal.engine.execution import to_arrow

from .test_basket import ALL_RULES, AS_OF, order_lines

INPUT_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("stage", pa.string()),
        ("abc_class", pa.string()),
        ("return_class", pa.string()),
        ("profit", pa.float64()),
        ("frequency", pa.int64()),
        ("clv", pa.float64()),
        ("risk", pa.float64()),
        ("has_cross_sell", pa.bool_()),
        ("has_up_sell", pa.bool_()),
    ]
)

# A healthy, unremarkable repeat customer; each case changes what it is about.
BASE: dict[str, Any] = {
    "stage": "customer",
    "abc_class": "C",
    "return_class": "low",
    "profit": 100.0,
    "frequency": 3,
    "clv": None,
    "risk": None,
    "has_cross_sell": False,
    "has_up_sell": False,
}


def inputs(con: ibis.BaseBackend, rows: dict[int, dict[str, Any]], name: str = "nba_inputs"):
    table = pa.Table.from_pylist(
        [{**BASE, **row, "customer_id": cid} for cid, row in rows.items()], schema=INPUT_SCHEMA
    )
    return con.create_table(name, table, overwrite=True)


def by_id(expr) -> dict[int, dict[str, Any]]:
    return {r["customer_id"]: r for r in to_arrow(expr).to_pylist()}


# One case per row of the decision table: (customer id, changes to BASE, expected action).
CASES = [
    # 1: negative return is not chased, even valuable-looking and about to leave (R12).
    (1, {"return_class": "negative", "profit": -50.0, "risk": 0.95, "clv": 900.0}, "leave_alone"),
    (2, {"stage": "prospect", "abc_class": None, "return_class": None, "profit": None}, "nurture"),
    (3, {"stage": "intent", "abc_class": None, "return_class": None, "frequency": 0}, "nurture"),
    # 3: churned by stage, A-class (R25).
    (4, {"stage": "churned", "abc_class": "A"}, "win_back"),
    # 3: churned by the model (risk 0.92 >= 0.9) although the stage lags, high return.
    (5, {"return_class": "high", "risk": 0.92}, "win_back"),
    # 4: at risk by stage, B-class.
    (6, {"stage": "at_risk", "abc_class": "B"}, "retain_call"),
    # 4: at risk by the model (0.6 >= 0.5), A-class: the call comes before the service.
    (7, {"abc_class": "A", "risk": 0.6}, "retain_call"),
    # 5: churned and not valuable.
    (8, {"stage": "churned", "has_cross_sell": True}, "leave_alone"),
    # 6: A-class and healthy, even with suggestions.
    (9, {"abc_class": "A", "risk": 0.2, "has_cross_sell": True}, "value_added_service"),
    # 7: one order so far.
    (10, {"frequency": 1, "has_cross_sell": True}, "nurture"),
    # 8 and 9: suggestions; cross-sell first when there are both.
    (11, {"has_cross_sell": True, "has_up_sell": True}, "cross_sell"),
    (12, {"has_up_sell": True}, "up_sell"),
    # 8: at risk but not valuable: a cheap cross-sell offer rather than a call.
    (13, {"stage": "at_risk", "has_cross_sell": True}, "cross_sell"),
    # 10: nothing to do.
    (14, {}, "leave_alone"),
    # 10: a subscription-only customer has no orders (null frequency) but is not new.
    (15, {"frequency": None}, "leave_alone"),
]


@pytest.mark.parametrize(("cid", "changes", "action"), CASES, ids=[str(c[0]) for c in CASES])
def test_each_rule_of_the_decision_table(duck, cid, changes, action):
    got = by_id(actions.next_best_action(inputs(duck, {cid: changes})))
    assert got[cid]["action"] == action


def test_negative_return_is_left_alone_even_at_risk_with_value(duck):
    got = by_id(actions.next_best_action(inputs(duck, {1: CASES[0][1]})))[1]
    assert got["action"] == "leave_alone"
    assert got["is_at_risk"] is False and got["is_churned"] is True  # risk 0.95 >= 0.9
    assert got["priority"] == 0.0


def test_valuable_by_clv_threshold(duck):
    t = inputs(duck, {1: {"stage": "churned", "clv": 500.0}, 2: {"stage": "churned", "clv": 499.0}})
    got = by_id(actions.next_best_action(t, ActionSettings(valuable_clv=500.0)))
    assert (got[1]["action"], got[2]["action"]) == ("win_back", "leave_alone")


def test_priority_is_value_at_risk_and_orders_the_list(duck):
    rows = {
        # retain_call: clv 1000 x model risk 0.6 = 600.
        10: {"abc_class": "A", "clv": 1000.0, "risk": 0.6},
        # win_back: no clv, profit 2000 x stage risk of churned 1.0 = 2000.
        11: {"stage": "churned", "abc_class": "A", "profit": 2000.0},
        # value_added_service: profit 5000 x model risk 0.05 = 250.
        12: {"abc_class": "A", "profit": 5000.0, "risk": 0.05},
        # leave_alone (negative return): 0, whatever its clv and risk.
        13: {"return_class": "negative", "clv": 10_000.0, "risk": 0.7},
        # cross_sell: profit 300 x default stage risk 0.1 = 30.
        14: {"profit": 300.0, "has_cross_sell": True},
        # retain_call at risk by stage: profit 60 x 0.5 = 30, tied with 14: lower id first.
        9: {"stage": "at_risk", "abc_class": "B", "profit": 60.0},
    }
    got = to_arrow(actions.next_best_action(inputs(duck, rows))).to_pylist()
    assert [(r["customer_id"], r["action"]) for r in got] == [
        (11, "win_back"),
        (10, "retain_call"),
        (12, "value_added_service"),
        (9, "retain_call"),
        (14, "cross_sell"),
        (13, "leave_alone"),
    ]
    assert [r["priority"] for r in got] == pytest.approx([2000, 600, 250, 30, 30, 0])
    assert [r["priority_rank"] for r in got] == [1, 2, 3, 4, 5, 6]
    first = got[0]
    assert (first["value_basis"], first["risk_basis"], first["risk"]) == ("profit", "stage", 1.0)
    assert (got[1]["value_basis"], got[1]["risk_basis"]) == ("clv", "model")


def test_churn_risk_prefers_the_classifier(duck):
    p_alive = ibis.memtable({"customer_id": [1, 2], "p_alive": [0.8, 0.3]})
    churn = ibis.memtable({"customer_id": [2, 3], "churn_probability": [0.1, 0.4]})
    got = by_id(actions.churn_risk(p_alive, churn))
    assert {cid: (r["risk"], r["risk_source"]) for cid, r in got.items()} == {
        1: (pytest.approx(0.2), "btyd"),
        2: (0.1, "classifier"),
        3: (0.4, "classifier"),
    }
    with pytest.raises(ValueError, match="neither"):
        actions.churn_risk()


def test_action_inputs_from_customers_suggestions_and_models(duck):
    customers = duck.create_table(
        "nba_customers",
        pa.Table.from_pylist(
            [
                {
                    "customer_id": 1,
                    "stage": "customer",
                    "abc_class": "A",
                    "return_class": "high",
                    "profit": 80.0,
                    "frequency": 4,
                },
                {
                    "customer_id": 4,
                    "stage": "at_risk",
                    "abc_class": "C",
                    "return_class": "low",
                    "profit": 5.0,
                    "frequency": 2,
                },
                {
                    "customer_id": 7,
                    "stage": "prospect",
                    "abc_class": None,
                    "return_class": None,
                    "profit": None,
                    "frequency": None,
                },
            ]
        ),
        overwrite=True,
    )
    ol = order_lines(duck)
    suggestions = basket.suggestions(ol, AS_OF, ALL_RULES)  # 1: cross + up, 4: cross + up
    risk = actions.churn_risk(ibis.memtable({"customer_id": [4], "p_alive": [0.3]}))
    clv = ibis.memtable({"customer_id": [1], "clv": [250.0]})
    got = by_id(actions.action_inputs(customers, suggestions, risk, clv))
    assert list(next(iter(got.values()))) == list(actions.INPUT_COLUMNS)
    assert (got[1]["has_cross_sell"], got[1]["has_up_sell"], got[1]["clv"]) == (True, True, 250.0)
    assert got[4]["risk"] == pytest.approx(0.7)
    assert (got[7]["has_cross_sell"], got[7]["risk"], got[7]["clv"]) == (False, None, None)


def test_missing_input_columns_are_named(duck):
    with pytest.raises(ValueError, match="missing \\['risk'"):
        actions.next_best_action(inputs(duck, {1: {}}).drop("risk"))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="at_risk_risk <= churned_risk"):
        ActionSettings(at_risk_risk=0.9, churned_risk=0.5)


def _rows(expr, key: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = to_arrow(expr).to_pylist()
    return sorted(rows, key=lambda r: tuple((r[k] is None, r[k]) for k in key))


def _assert_same(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.keys() == b.keys()
        for column, value in a.items():
            if isinstance(value, float):
                assert b[column] == pytest.approx(value, rel=1e-12), column
            else:
                assert b[column] == value, column


@pytest.mark.spark
def test_basket_and_next_best_action_agree_on_duckdb_and_spark(duck, spark):
    pytest.importorskip("pyspark")
    results = {}
    for name, con in (("duckdb", duck), ("spark", spark)):
        ol = order_lines(con)
        order_rules = basket.association_rules(ol, AS_OF, ALL_RULES)
        customer_rules = basket.association_rules(
            ol, AS_OF, basket.BasketSettings(mode="customer", min_pair_count=1), "category"
        )
        sku = basket.suggestions(ol, AS_OF, ALL_RULES)
        category = basket.suggestions(ol, AS_OF, ALL_RULES, "category")
        nba_in = inputs(con, {cid: changes for cid, changes, _ in CASES}, name="nba_parity")
        with_suggestions = actions.action_inputs(
            nba_in.drop("has_cross_sell", "has_up_sell", "clv", "risk"),
            sku,
            actions.churn_risk(
                con.create_table(
                    "nba_p_alive",
                    pa.table({"customer_id": [1, 4, 9], "p_alive": [0.05, 0.4, 0.9]}),
                    overwrite=True,
                )
            ),
        )
        results[name] = {
            "order_rules": _rows(order_rules, ("antecedent", "consequent")),
            "customer_rules": _rows(customer_rules, ("antecedent", "consequent")),
            "sku": _rows(sku, ("customer_id", "kind", "rank")),
            "category": _rows(category, ("customer_id", "kind", "rank")),
            "nba": _rows(actions.next_best_action(nba_in), ("customer_id",)),
            "nba_built": _rows(actions.next_best_action(with_suggestions), ("customer_id",)),
        }
    assert results["duckdb"]["order_rules"]  # the comparison is not of two empty tables
    assert results["duckdb"]["nba"][0]["action"] == "leave_alone"
    for part in results["duckdb"]:
        _assert_same(results["duckdb"][part], results["spark"][part])
