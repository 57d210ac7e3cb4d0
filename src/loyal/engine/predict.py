"""Predictions for every customer: the buy-till-you-die models, the churn classifier, next actions.

``btyd`` fits BG/NBD and Gamma-Gamma on the paid orders before ``as_of`` (after checking them on
a holdout window at the end of the history) and scores every buyer: P(alive), expected
purchases, expected spend, CLV. ``churn`` back-tests the subscription churn classifier, then
scores current subscribers with their reasons. ``actions`` turns value, risk and basket
suggestions into one next best action per customer. Each returns executed Arrow tables and
plain numbers, ready to store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from loyal.engine import actions as actions_module
from loyal.engine import basket, churn, drivers
from loyal.engine.btyd import (
    BetaGeoModel,
    GammaGammaModel,
    compare_holdout,
    group_histories,
    score_customers,
    tracking_curve,
)
from loyal.engine.common import utc
from loyal.engine.execution import cache, to_arrow, to_pandas, to_scalar
from loyal.engine.run import EngineResults, Progress, run_all
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources
from loyal.engine.summary import (
    calibration_holdout_summary,
    purchase_counts_by_period,
    summarise,
)


@dataclass(frozen=True)
class PredictionSettings:
    """Settings of the predictive models (time in days)."""

    horizon_days: int = 90  # expected purchases over this many days
    clv_months: int = 12  # CLV horizon
    monthly_discount_rate: float = 0.01
    holdout_days: int = 90  # the end of the history held out to check the BTYD models
    min_repeat_buyers: int = 20  # fewer, and the BTYD models are not fitted


@dataclass(frozen=True)
class BtydResult:
    params: dict[str, float]
    standard_errors: dict[str, float]
    log_likelihood: float
    spend_params: dict[str, float]
    holdout: dict[str, float]  # customers, mae, rmse, total_actual, total_predicted, days
    tracking: pa.Table  # period (weeks), actual/predicted cumulative repeat purchases
    scores: pa.Table  # customer_id, p_alive, expected_purchases, expected_spend, clv
    customer_equity: float


@dataclass(frozen=True)
class ChurnResult:
    backtest: dict[str, Any]  # auc, top_decile_lift, brier, churn_rate, mean_predicted, rows
    calibration: pa.Table  # decile, customers, mean_predicted, observed_rate
    drivers: pa.Table  # global drivers, most important first
    scores: pa.Table  # customer_id, churn_probability
    reasons: pa.Table  # customer_id, rank, code, params (JSON)


def _paid(orders: ir.Table) -> ir.Table:
    return orders.filter(orders.status == "paid")


def btyd(sources: Sources, as_of: dt.datetime, settings: PredictionSettings) -> BtydResult | None:
    """Fit and check BG/NBD + Gamma-Gamma on daily purchase histories; None with too little data."""
    as_of = utc(as_of)
    orders = _paid(sources.orders)
    summary = summarise(orders, as_of, period="D").to_pandas()
    repeat = summary[(summary.frequency > 0) & (summary.monetary_value > 0)]
    if len(repeat) < settings.min_repeat_buyers:
        return None
    # Fitted and scored once per distinct (frequency, recency, T): the same estimates and scores.
    patterns = group_histories(summary.frequency, summary.recency, summary["T"])
    x, t_x, age, counts, _ = patterns
    purchases = BetaGeoModel().fit(x, t_x, age, weights=counts)
    spend = GammaGammaModel().fit(repeat.frequency, repeat.monetary_value)

    calibration_end = as_of - dt.timedelta(days=settings.holdout_days)
    split = to_pandas(calibration_holdout_summary(orders, calibration_end, as_of, period="D"))
    holdout: dict[str, float] = {"days": float(settings.holdout_days)}
    tracking = pa.table({"period": pa.array([], pa.int64())})
    if (
        len(split) >= settings.min_repeat_buyers
        and (split.frequency_cal > 0).sum() >= settings.min_repeat_buyers
    ):
        checked = BetaGeoModel().fit(split.frequency_cal, split.recency_cal, split.T_cal)
        comparison = compare_holdout(
            checked,
            split.frequency_cal,
            split.recency_cal,
            split.T_cal,
            split.frequency_holdout,
            settings.holdout_days,
        )
        holdout.update(
            customers=float(comparison.n_customers),
            mae=comparison.mae,
            rmse=comparison.rmse,
            total_actual=comparison.total_actual,
            total_predicted=comparison.total_predicted,
        )
        first_order = to_scalar(orders.ordered_at.min())
        counts = to_pandas(purchase_counts_by_period(orders, first_order, as_of, period="W"))
        weekly = BetaGeoModel().fit(*_weekly(split))
        tracking = pa.Table.from_pandas(tracking_curve(weekly, counts), preserve_index=False)

    scores = score_customers(
        purchases,
        spend,
        summary.frequency,
        summary.recency,
        summary["T"],
        summary.monetary_value,
        horizon=settings.horizon_days,
        months=settings.clv_months,
        discount_rate=settings.monthly_discount_rate,
        time_unit="D",
        patterns=patterns,
    )
    scores.insert(0, "customer_id", summary.customer_id.to_numpy())
    table = pa.Table.from_pandas(scores, preserve_index=False)
    return BtydResult(
        params=_floats(purchases.params_),
        standard_errors=_floats(purchases.standard_errors_),
        log_likelihood=float(purchases.log_likelihood_),
        spend_params=_floats(spend.params_),
        holdout=holdout,
        tracking=tracking,
        scores=table,
        customer_equity=float(np.nansum(scores.clv.to_numpy())),
    )


def _weekly(split: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The calibration histories in weeks, for the weekly tracking curve."""
    return (
        split.frequency_cal.to_numpy(),
        split.recency_cal.to_numpy() / 7.0,
        split.T_cal.to_numpy() / 7.0,
    )


def _floats(params: Any) -> dict[str, float]:
    return params.as_dict()


def churn_model(sources: Sources, as_of: dt.datetime) -> ChurnResult | None:
    """Back-test, explain and score the subscription churn classifier; None without enough data."""
    as_of = utc(as_of)
    try:
        tested, fitted = churn.backtest_and_fit(sources, as_of)
    except ValueError:
        # Too few subscriptions, or no churners or no stayers to learn from.
        return None
    assert fitted is not None  # backtest_and_fit fits by default
    found = drivers.global_drivers(tested.model, tested.test)
    calibration = pa.Table.from_pylist([vars(b) for b in tested.calibration])
    backtest = {
        "auc": tested.auc,
        "top_decile_lift": tested.top_decile_lift,
        "brier": tested.brier,
        "churn_rate": tested.churn_rate,
        "mean_predicted": tested.mean_predicted,
        "train_rows": tested.train_rows,
        "test_rows": tested.test_rows,
        "horizon_days": tested.horizon_days,
        "test_snapshot": tested.test_snapshot.isoformat(),
    }
    del tested  # its whole test snapshot is no longer needed
    current = churn.current_frame(sources, as_of)
    scores = churn.score_frame(fitted, current)
    reasons = drivers.customer_reasons(fitted, current) if len(current) else {}
    return ChurnResult(
        backtest=backtest,
        calibration=calibration,
        drivers=drivers.drivers_table(found),
        scores=scores,
        reasons=drivers.reasons_table(reasons),
    )


def next_actions(
    sources: Sources,
    as_of: dt.datetime,
    customers: pa.Table,
    btyd_scores: pa.Table | None,
    churn_scores: pa.Table | None,
) -> tuple[pa.Table, pa.Table]:
    """(suggestions, actions): cross-sell and up-sell suggestions, and one action per customer."""
    # Materialised once on the backend: the actions read them again instead of mining the
    # baskets a second time.
    suggestions = cache(basket.suggestions(sources.order_lines, utc(as_of)))
    p_alive = (
        None
        if btyd_scores is None
        else ibis.memtable(btyd_scores.select(["customer_id", "p_alive"]))
    )
    probability = (
        None if churn_scores is None or churn_scores.num_rows == 0 else ibis.memtable(churn_scores)
    )
    risk = (
        actions_module.churn_risk(p_alive, probability)
        if (p_alive is not None or probability is not None)
        else None
    )
    clv = None if btyd_scores is None else ibis.memtable(btyd_scores.select(["customer_id", "clv"]))
    inputs = actions_module.action_inputs(ibis.memtable(customers), suggestions, risk, clv)
    try:
        chosen = to_arrow(actions_module.next_best_action(inputs))
        found = to_arrow(suggestions)
    finally:
        suggestions.release()
    return found, chosen


@dataclass(frozen=True)
class Analysis:
    """Everything ``loyal analyze`` computes for one ``as_of``."""

    results: EngineResults
    btyd: BtydResult | None
    churn: ChurnResult | None
    suggestions: pa.Table  # customer_id, kind, sku, category, score, rank
    actions: pa.Table  # customer_id, action, priority, priority_rank, ...
    stated_reasons: pa.Table  # period, source, reason, count, share: what customers said


def analyse(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings | None = None,
    prediction: PredictionSettings | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """The descriptive analyses (``run_all``) and the predictions, in the order they need.

    P(alive) from the BTYD models feeds the stages and churn flags of ``run_all``; the value
    classes of ``run_all`` and both models' risks feed the next best actions.
    """
    prediction = prediction or PredictionSettings()
    report: Progress = progress or (lambda name, i, n: None)
    # run_all's steps come between the BTYD fit and the two steps after it.
    run_steps = [0]

    def inner(name: str, i: int, n: int) -> None:
        run_steps[0] = n
        report(name, i + 1, n + 3)

    report("btyd", 0, 3)
    fitted = btyd(sources, as_of, prediction)
    p_alive = (
        None if fitted is None else ibis.memtable(fitted.scores.select(["customer_id", "p_alive"]))
    )
    results = run_all(sources, as_of, settings, p_alive=p_alive, progress=inner)
    total = run_steps[0] + 3
    report("churn_model", total - 2, total)
    classifier = churn_model(sources, as_of)
    report("next_actions", total - 1, total)
    suggestions, chosen = next_actions(
        sources,
        as_of,
        results.customers,
        None if fitted is None else fitted.scores,
        None if classifier is None else classifier.scores,
    )
    stated = to_arrow(drivers.stated_reasons(sources, as_of, settings))
    return Analysis(
        results=results,
        btyd=fitted,
        churn=classifier,
        suggestions=suggestions,
        actions=chosen,
        stated_reasons=stated,
    )
