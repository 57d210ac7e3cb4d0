"""Revenue retention (R6) of subscriptions: net and gross revenue retention, revenue churn."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from loyal.engine.common import Period, complete_periods, count_if, ratio, seconds, utc
from loyal.engine.metrics import OPEN_END, periods_table
from loyal.engine.settings import EngineSettings


def revenue_retention(
    subscriptions: ir.Table, periods: Sequence[Period], as_of: dt.datetime
) -> ir.Table:
    """Monthly recurring revenue kept from the customers paying at each period's start.

    MRR of a customer at instant t = sum of ``monthly_amount`` of their subscriptions running at
    t (started_at <= t < ended_at, unended ones running). Per period [start, end):

    - mrr_start: MRR at start of the customers with MRR > 0 then (the cohort);
    - mrr_end: MRR at end of the same customers (new customers excluded);
    - churned_mrr: mrr_start of cohort customers with no MRR at end;
    - contraction_mrr / expansion_mrr: decreases / increases of the others;
    - net_revenue_retention = mrr_end / mrr_start;
      gross_revenue_retention = (mrr_start - churned - contraction) / mrr_start;
      revenue_churn_rate = (churned + contraction) / mrr_start;
    - new_mrr: MRR at end of customers with none at start.
    """
    as_of = utc(as_of)
    s = subscriptions.filter(subscriptions.started_at < as_of)
    # An end after as_of is not known yet: the subscription is running as of as_of.
    end_s = ibis.cases(
        (s.ended_at.notnull() & (s.ended_at < as_of), seconds(s.ended_at)), else_=OPEN_END
    )
    s = s.select(
        customer_id=s.customer_id,
        start_s=seconds(s.started_at),
        end_s=end_s,
        mrr=s.monthly_amount.fill_null(0.0),
    )
    j = s.cross_join(periods_table(periods))
    run_start = (j.start_s <= j.p_start_s) & (j.p_start_s < j.end_s)
    run_end = (j.start_s <= j.p_end_s) & (j.p_end_s < j.end_s)
    per = (
        j.filter(run_start | run_end)
        .group_by(["p_period", "customer_id"])
        .aggregate(
            m0=ibis.cases((run_start, j.mrr), else_=0.0).sum(),
            m1=ibis.cases((run_end, j.mrr), else_=0.0).sum(),
        )
    )
    cohort = per.m0 > 0
    agg = per.group_by(period=per.p_period).aggregate(
        customers=count_if(cohort),
        mrr_start=ibis.cases((cohort, per.m0), else_=0.0).sum(),
        mrr_end=ibis.cases((cohort, per.m1), else_=0.0).sum(),
        churned_mrr=ibis.cases((cohort & (per.m1 <= 0), per.m0), else_=0.0).sum(),
        contraction_mrr=ibis.cases(
            (cohort & (per.m1 > 0) & (per.m1 < per.m0), per.m0 - per.m1), else_=0.0
        ).sum(),
        expansion_mrr=ibis.cases((cohort & (per.m1 > per.m0), per.m1 - per.m0), else_=0.0).sum(),
        new_mrr=ibis.cases((~cohort, per.m1), else_=0.0).sum(),
    )
    spine = periods_table(periods).select(s_period="p_period")
    agg = spine.left_join(agg, spine.s_period == agg.period)
    agg = agg.mutate(period=agg.s_period).drop("s_period")
    zero = {c: agg[c].fill_null(0) for c in agg.columns if c != "period"}
    agg = agg.mutate(**zero)
    return agg.mutate(
        net_revenue_retention=ratio(agg.mrr_end, agg.mrr_start),
        gross_revenue_retention=ratio(
            agg.mrr_start - agg.churned_mrr - agg.contraction_mrr, agg.mrr_start
        ),
        revenue_churn_rate=ratio(agg.churned_mrr + agg.contraction_mrr, agg.mrr_start),
    ).order_by("period")


def revenue_retention_trend(
    subscriptions: ir.Table,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    freq: str | None = None,
    periods: int | None = None,
) -> ir.Table:
    """``revenue_retention`` for each complete calendar period before ``as_of``."""
    grid = complete_periods(as_of, freq or settings.trend_freq, periods or settings.trend_periods)
    return revenue_retention(subscriptions, grid, as_of)
