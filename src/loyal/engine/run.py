"""Run every retention analysis for one ``as_of``: the per-customer table, KPIs and charts.

``run_all`` is the one place that executes a whole analysis run (through ``execution``): each
step builds an Ibis expression with the analysis modules and runs it on the sources' backend.
Intermediate tables that several steps read (the purchase sequence, coverage spells, valued
customers, RFM scores) are materialised once on the backend (``execution.cache``) and released
at the end, except the purchase sequence: the steps that read it run first, and it is released
before the per-customer table (the largest result) is built. Later steps read that table back
from its executed Arrow table.
The only computation after execution is the Kaplan-Meier fit (NumPy on the executed
durations) and the headline counts read off the already executed per-customer table.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loyal.engine import (
    churn_window,
    cohorts,
    lifecycle,
    metrics,
    revenue_retention,
    rfm,
    stickiness,
    survival,
    value,
)
from loyal.engine.common import (
    complete_periods,
    lookback_start,
    order_totals,
    purchase_sequence,
    utc,
)
from loyal.engine.execution import cache, to_arrow, to_row
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

Progress = Callable[[str, int, int], None]

# Threads sorting the per-customer table's columns: two, the smallest server Loyal is sized for;
# each holds one more sorted column in memory while the originals are released.
_SORT_THREADS = 2

# Customer attributes carried into the per-customer table.
_ATTRIBUTES = (
    "external_id",
    "name",
    "joined_at",
    "acquisition_source",
    "acquisition_channel",
    "city",
    "owner_id",
)


def customer_table(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    p_alive: ir.Table | None = None,
    *,
    spells: ir.Table | None = None,
    valued: ir.Table | None = None,
    scored: ir.Table | None = None,
    purchases: ir.Table | None = None,
    ordered: bool = True,
) -> ir.Table:
    """One row per customer: attributes, stage, RFM, value classes (an Ibis expression).

    Columns: customer_id, the customer attributes, stage, basis, active, churned,
    days_since_last_order, spells, recency_days, frequency, monetary, r_score, f_score,
    m_score, rfm_segment, order_revenue, subscription_revenue, revenue, cost_of_goods, margin,
    contacts, complaints, compensations, cost_to_serve, profit, profit_rank, abc_class,
    return_class. This is also the table that rule segments (``segments``) are evaluated on.
    Needs a resolved churn window. ``spells``, ``valued`` (``value.customer_value``),
    ``scored`` (``rfm.rfm``) and ``purchases`` (``common.purchase_sequence``) may be passed in
    when already computed. ``ordered=False`` leaves the rows in no particular order (for a
    caller that sorts them itself); otherwise they are sorted by customer_id.
    """
    # The attributes come along with the stages, which read the customer records anyway.
    t = lifecycle.customer_stages(
        sources,
        as_of,
        settings,
        p_alive,
        spells=spells,
        purchases=purchases,
        attributes=_ATTRIBUTES,
    )
    if scored is None:
        scored = rfm.rfm(sources.orders, as_of, settings, purchases=purchases)
    if valued is None:
        valued = value.customer_value(sources, as_of, settings, purchases=purchases)
    scored = scored.rename(r_id="customer_id")
    valued = valued.rename(v_id="customer_id", profit_rank="rank")
    t = t.left_join(scored, t.customer_id == scored.r_id).drop("r_id")
    t = t.left_join(valued, t.customer_id == valued.v_id).drop(
        "v_id", "cum_customer_share", "cum_profit_share"
    )
    front = ["customer_id", *_ATTRIBUTES]
    t = t.select(*front, *[c for c in t.columns if c not in front])
    return t.order_by("customer_id") if ordered else t


@dataclass(frozen=True)
class EngineResults:
    """Everything one analysis run produces, as Arrow tables (plus the KPI dict).

    ``settings`` is the settings actually used (with the churn window resolved).
    """

    as_of: dt.datetime
    settings: EngineSettings
    customers: pa.Table
    kpis: Mapping[str, Any]
    churn_trend: pa.Table
    revenue_retention: pa.Table
    stickiness_trend: pa.Table
    lifecycle_counts: pa.Table
    cohort_matrix: pa.Table
    loyalty_ladder: pa.Table
    critical_window: pa.Table
    tenure_curve: pa.Table
    subscription_hazard: pa.Table
    km_curves: pa.Table
    pareto: pa.Table
    rfm_grid: pa.Table
    abc_summary: pa.Table
    return_summary: pa.Table
    complaint_churn: pa.Table

    @property
    def charts(self) -> dict[str, pa.Table]:
        """The chart tables by name (every Arrow field but ``customers``)."""
        skip = {"as_of", "settings", "customers", "kpis"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def kpi_table(self) -> pa.Table:
        """The KPI snapshot as a two-column table (kpi, value as float64), for storage."""
        names = list(self.kpis)
        values = [None if v is None else float(v) for v in self.kpis.values()]
        return pa.table({"kpi": names, "value": pa.array(values, pa.float64())})


def _km(
    sources: Sources, as_of: dt.datetime, settings: EngineSettings, spells: ir.Table
) -> pa.Table:
    by = settings.km_by if settings.km_by in sources.customers.columns else None
    durations = to_arrow(
        survival.subscription_durations(sources, as_of, settings, by=by, spells=spells)
    )
    if durations.num_rows == 0:
        return survival.KM_SCHEMA.empty_table()
    longest = pc.max(durations.column("duration_days")).as_py() or 0.0
    # Weekly points keep the curves small however many subscriptions there are.
    timeline = np.arange(0.0, math.ceil(longest) + 7.0, 7.0)
    return survival.kaplan_meier(durations, by=by, alpha=settings.km_alpha, timeline=timeline)


def _count(table: pa.Table, column: str, values: tuple[Any, ...]) -> int:
    return int(pc.sum(pc.is_in(table.column(column), pa.array(values))).as_py() or 0)


def _activity_kpis(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    churn: ir.Table,
    purchases: ir.Table,
) -> dict[str, dict[str, Any]]:
    """The KPI period's churn (``churn``: its ``metrics.churn_rate``), stickiness, active users
    and revenue retention (one row each)."""
    period = metrics.default_period(as_of, settings)
    return {
        "churn": to_row(churn),
        "sticky": to_row(
            stickiness.stickiness(sources, period.start, period.end, settings, purchases=purchases)
        ),
        "users": to_row(stickiness.active_users(sources.events, as_of, settings)),
        "nrr": to_row(revenue_retention.revenue_retention(sources.subscriptions, [period], as_of)),
    }


def _kpis(
    settings: EngineSettings, customers: pa.Table, activity: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    churn, sticky, users, nrr = (activity[k] for k in ("churn", "sticky", "users", "nrr"))
    stage = "stage"
    buyers = ("customer", "at_risk", "churned", "won_back")
    profit = pc.sum(customers.column("profit")).as_py()
    return {
        "churn_window_days": settings.churn_window_days,
        "kpi_period_days": settings.kpi_period_days,
        "customers": _count(customers, stage, buyers),
        "prospects": _count(customers, stage, ("prospect", "potential_intent", "intent")),
        "active_customers": int(pc.sum(customers.column("active")).as_py() or 0),
        "at_risk_customers": _count(customers, stage, ("at_risk",)),
        "churned_customers": _count(customers, stage, ("churned",)),
        "won_back_customers": _count(customers, stage, ("won_back",)),
        "churn_rate_absolute": churn["absolute_churn_rate"],
        "churn_rate_relative": churn["relative_churn_rate"],
        "lost_customers": churn["lost_customers"],
        "revenue": sticky["revenue"],
        "orders": sticky["orders"],
        "buyers": sticky["buyers"],
        "repeat_purchase_rate": sticky["repeat_purchase_rate"],
        "cumulative_repeat_purchase_rate": sticky["cumulative_repeat_purchase_rate"],
        "visitors": sticky["visitors"],
        "conversion_rate": sticky["conversion_rate"],
        "pages_per_session": sticky["pages_per_session"],
        "dwell_per_user": sticky["dwell_per_user"],
        "dau": users["dau"],
        "wau": users["wau"],
        "mau": users["mau"],
        "dau_mau": users["dau_mau"],
        "mrr": nrr["mrr_end"] + nrr["new_mrr"],  # everyone's MRR at as_of
        "net_revenue_retention": nrr["net_revenue_retention"],
        "profit": 0.0 if profit is None else profit,
    }


def run_all(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings | None = None,
    *,
    p_alive: ir.Table | None = None,
    progress: Progress | None = None,
) -> EngineResults:
    """Run every analysis for ``as_of`` and return the executed results.

    ``p_alive`` (customer_id, p_alive), when the predictive models have run, feeds the churn
    flag and stages. ``progress(step, i, n)`` is called before each of the n steps.
    """
    as_of = utc(as_of)
    settings = settings or EngineSettings()
    out: dict[str, Any] = {}
    ctx: dict[str, Any] = {}
    cached: list[ir.Table] = []

    def release(table_: ir.Table) -> None:
        cached.remove(table_)
        table_.release()

    def keep(name: str, expr: ir.Table) -> None:
        # Materialise a table that several steps read once on the backend (a temporary table on
        # DuckDB, a persisted frame on Spark).
        ctx[name] = cache(expr)
        cached.append(ctx[name])

    def sequence() -> None:
        keep("purchases", purchase_sequence(sources.orders, as_of))

    def resolve() -> None:
        ctx["settings"] = churn_window.resolve_churn_window(
            sources.orders, as_of, settings, purchases=ctx["purchases"]
        )

    def s() -> EngineSettings:
        return ctx["settings"]

    def share() -> None:
        purchases = ctx["purchases"]
        # Every paid order grouped by customer once, for both the value and RFM.
        since = lookback_start(as_of, s().value_lookback_days)
        keep("totals", order_totals(purchases, since))
        totals = ctx["totals"]
        for name, build in (
            (
                "spells",
                lambda: metrics.activity_spells(sources, as_of, s(), purchases=purchases),
            ),
            (
                "valued",
                lambda: value.customer_value(
                    sources, as_of, s(), purchases=purchases, totals=totals
                ),
            ),
            (
                "scored",
                lambda: rfm.rfm(sources.orders, as_of, s(), purchases=purchases, totals=totals),
            ),
            # The customers' last orders: all that the stages read of the sequence, kept so the
            # sequence can be released before the per-customer table is built.
            (
                "last_orders",
                lambda: purchases.filter(purchases.next_s.isnull()).select(
                    "customer_id", "o_s", "next_s"
                ),
            ),
        ):
            keep(name, build())
        release(ctx.pop("totals"))

    def table(name: str, build: Callable[[], ir.Table]) -> tuple[str, Callable[[], None]]:
        def step() -> None:
            out[name] = to_arrow(build())

        return name, step

    def customers_step() -> None:
        # Every step that reads the purchase sequence has run: free its memory for this one,
        # the run's largest result.
        release(ctx.pop("purchases"))
        expr = customer_table(
            sources,
            as_of,
            s(),
            p_alive,
            spells=ctx["spells"],
            valued=ctx["valued"],
            scored=ctx["scored"],
            purchases=ctx["last_orders"],
            ordered=False,
        )
        # Sorted in Arrow, one column at a time (each unsorted column is freed once its sorted
        # copy exists): a sort on the backend, or of the whole table, would hold a second copy
        # of every wide row at the run's peak of memory.
        customers = to_arrow(expr)
        order = pc.sort_indices(customers, [("customer_id", "ascending")])
        schema, columns = customers.schema, []
        # Two columns at a time, on two threads (Arrow's take releases the GIL; the backend is
        # idle meanwhile): gathering the string columns is most of the sort's time.
        with ThreadPoolExecutor(max_workers=_SORT_THREADS) as pool:
            while customers.num_columns:
                count = min(_SORT_THREADS, customers.num_columns)
                batch = [customers.column(i) for i in range(count)]
                columns.extend(pool.map(lambda column: column.take(order), batch))
                del batch
                for _ in range(count):
                    customers = customers.remove_column(0)
        out["customers"] = pa.Table.from_arrays(columns, schema=schema)
        # Later steps read the executed table back (as an in-memory table) rather than having
        # the backend store a copy of it.
        ctx["customers"] = ibis.memtable(out["customers"])

    def churn() -> None:
        # Without P(alive) scores, the churn trend's periods and the KPI period are aggregated in
        # one pass over the spells and orders (each period's numbers depend on it alone); with
        # them, the KPI period's lost customers differ, and it is aggregated on its own.
        grid = complete_periods(as_of, s().trend_freq, s().trend_periods)
        kpi = metrics.default_period(as_of, s())
        shared = {"spells": ctx["spells"], "purchases": ctx["purchases"]}
        periods = grid if p_alive is not None else [*grid, kpi]
        keep("churn", metrics.churn_period_columns(sources, periods, as_of, s(), **shared))
        ctx["churn_trend"] = metrics.churn_period_rows(ctx["churn"], grid).order_by("period")
        if p_alive is None:
            rate = metrics.churn_period_rows(ctx["churn"], [kpi], first=len(grid), drop_empty=False)
            ctx["churn_rate"] = rate.drop("period")
        else:
            ctx["churn_rate"] = metrics.churn_rate(sources, as_of, s(), p_alive=p_alive, **shared)

    def activity_kpis_step() -> None:
        ctx["activity_kpis"] = _activity_kpis(
            sources, as_of, s(), ctx["churn_rate"], ctx["purchases"]
        )

    def kpis_step() -> None:
        out["kpis"] = _kpis(s(), out["customers"], ctx["activity_kpis"])

    def km_step() -> None:
        out["km_curves"] = _km(sources, as_of, s(), ctx["spells"])

    def critical() -> ir.Table:
        first, joined = (
            cohorts.critical_window(sources, as_of, s(), anchor=anchor, purchases=ctx["purchases"])
            for anchor in ("first_purchase", "joined")
        )
        return first.union(joined, distinct=False)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("purchases", sequence),
        ("churn_window", resolve),
        ("shared", share),
        ("churn", churn),
        ("activity_kpis", activity_kpis_step),
        table("churn_trend", lambda: ctx["churn_trend"]),
        table(
            "revenue_retention",
            lambda: revenue_retention.revenue_retention_trend(sources.subscriptions, as_of, s()),
        ),
        table(
            "stickiness_trend",
            lambda: stickiness.stickiness_trend(sources, as_of, s(), purchases=ctx["purchases"]),
        ),
        table(
            "lifecycle_counts",
            lambda: lifecycle.lifecycle_counts(sources, as_of, s(), purchases=ctx["purchases"]),
        ),
        table(
            "cohort_matrix",
            lambda: cohorts.cohort_retention(sources, as_of, s(), purchases=ctx["purchases"]),
        ),
        table(
            "loyalty_ladder",
            lambda: cohorts.loyalty_ladder(sources.orders, as_of, s(), purchases=ctx["purchases"]),
        ),
        table("critical_window", critical),
        table(
            "tenure_curve",
            lambda: cohorts.tenure_curve(sources, as_of, s(), purchases=ctx["purchases"]),
        ),
        table(
            "subscription_hazard",
            lambda: cohorts.subscription_hazard(sources, as_of, s(), spells=ctx["spells"]),
        ),
        ("km_curves", km_step),
        ("customers", customers_step),
        ("kpis", kpis_step),
        table(
            "pareto",
            lambda: (
                ctx["valued"]
                .select(
                    "customer_id",
                    "rank",
                    "profit",
                    "cum_customer_share",
                    "cum_profit_share",
                    "abc_class",
                )
                .order_by("rank")
            ),
        ),
        table("rfm_grid", lambda: rfm.rfm_grid(ctx["scored"])),
        table("abc_summary", lambda: value.class_summary(ctx["valued"], "abc_class")),
        table("return_summary", lambda: value.class_summary(ctx["valued"], "return_class")),
        table(
            "complaint_churn",
            lambda: metrics.complaint_churn(ctx["customers"], sources.interactions, as_of),
        ),
    ]
    try:
        for i, (name, step) in enumerate(steps):
            if progress is not None:
                progress(name, i, len(steps))
            step()
    finally:
        for table_ in cached:
            table_.release()
    return EngineResults(as_of=as_of, settings=s(), **out)
