"""The analysis report: headline KPIs and charts of one stored run, as one self-contained HTML file.

Everything comes from what ``loyal analyze`` stored; nothing is recomputed. Plotly's JavaScript
is inlined, so the file opens offline and can be mailed as it is.
"""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
from django.utils.translation import gettext as _
from plotly.offline import get_plotlyjs

from loyal.insights import labels
from loyal.insights.models import AnalysisRun
from loyal.insights.selectors import segment_history

HEADLINE_KPIS = (
    "customers",
    "active_customers",
    "at_risk_customers",
    "churned_customers",
    "churn_rate_absolute",
    "churn_rate_relative",
    "repeat_purchase_rate",
    "conversion_rate",
    "dau_mau",
    "mrr",
    "net_revenue_retention",
    "revenue",
    "profit",
    "customer_equity",
)


def headline(run: AnalysisRun) -> list[tuple[str, str]]:
    """(label, formatted value) of the headline KPIs of ``run``."""
    values = {k.kpi: k.value for k in run.kpis.all()}
    return [
        (str(labels.KPIS.get(kpi, kpi)), labels.format_kpi(kpi, values.get(kpi)))
        for kpi in HEADLINE_KPIS
    ]


def _layout(fig: go.Figure, title: str, x: str = "", y: str = "") -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        height=420,
        margin={"t": 60, "b": 50},
    )
    return fig


def cohort_heatmap(rows: list[dict[str, Any]]) -> go.Figure:
    cohorts = sorted({r["cohort"] for r in rows})
    periods = sorted({r["period"] for r in rows})
    cell = {(r["cohort"], r["period"]): r["retention"] for r in rows}
    z = [[cell.get((c, p)) for p in periods] for c in cohorts]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=periods,
            y=[c[:7] for c in cohorts],
            colorscale="Blues",
            zmin=0,
            zmax=1,
            hovertemplate="%{y} +%{x}: %{z:.1%}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(
        fig, _("Retention by first-purchase cohort"), _("Months since first purchase"), _("Cohort")
    )


def pareto_chart(rows: list[dict[str, Any]]) -> go.Figure:
    x = [r["cum_customer_share"] for r in rows]
    fig = go.Figure(
        go.Scatter(
            x=x, y=[r["cum_profit_share"] for r in rows], mode="lines", name=_("Cumulative profit")
        )
    )
    for share, name in ((0.8, "A | B"), (0.9, "B | C")):
        fig.add_hline(y=share, line_dash="dot", annotation_text=name)
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        _("Pareto: cumulative profit by share of customers"),
        _("Customers, most profitable first"),
        _("Share of profit"),
    )


def rfm_map(rows: list[dict[str, Any]]) -> go.Figure:
    cell = {(r["r_score"], r["f_score"]): r for r in rows}
    rs = sorted({r["r_score"] for r in rows if r["r_score"] is not None})
    fs = sorted({r["f_score"] for r in rows if r["f_score"] is not None})
    z = [[(cell.get((r, f)) or {}).get("customers") for r in rs] for f in fs]
    text = [
        [labels.label(labels.RFM_SEGMENTS, (cell.get((r, f)) or {}).get("rfm_segment")) for r in rs]
        for f in fs
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=rs,
            y=fs,
            text=text,
            texttemplate="%{text}<br>%{z}",
            colorscale="Greens",
            hovertemplate="R %{x} F %{y}: %{z}<extra>%{text}</extra>",
        )
    )
    return _layout(
        fig,
        _("RFM map: customers by recency and frequency score"),
        _("Recency score"),
        _("Frequency score"),
    )


def churn_trend(rows: list[dict[str, Any]]) -> go.Figure:
    rows = sorted(rows, key=lambda r: r["period"])
    periods = [r["period"] for r in rows]
    fig = go.Figure()
    fig.add_scatter(
        x=periods, y=[r["absolute_churn_rate"] for r in rows], name=_("Absolute churn rate")
    )
    fig.add_scatter(
        x=periods, y=[r["relative_churn_rate"] for r in rows], name=_("Relative churn rate")
    )
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, _("Churn rate by period"), _("Period"), _("Churn rate"))


def loyalty_ladder(rows: list[dict[str, Any]]) -> go.Figure:
    purchases = [r["purchases"] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=purchases, y=[r["repeat_rate"] for r in rows], name=_("Made another purchase"))
    fig.add_scatter(
        x=purchases, y=[r["retention_at_horizon"] for r in rows], name=_("Still buying later")
    )
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        _("Loyalty ladder: what happens after the n-th purchase"),
        _("Purchases made"),
        _("Share"),
    )


def critical_window(rows: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["anchor"], r["window_days"])].append(r)
    for (anchor, days), items in sorted(groups.items()):
        name = (
            _("{days} days after the first purchase")
            if anchor == "first_purchase"
            else _("{days} days after joining")
        ).format(days=days)
        items = sorted(items, key=lambda r: r["purchases"])
        fig.add_bar(
            x=[str(r["purchases"]) for r in items],
            y=[r["retention_rate"] for r in items],
            name=name,
        )
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        _("Critical window: later retention by purchases early on"),
        _("Purchases in the window"),
        _("Retained"),
    )


def tenure_curve(activity: list[dict[str, Any]], hazard: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(
        x=[r["tenure_month"] for r in activity],
        y=[r["active_share"] for r in activity],
        name=_("Active share of customers"),
    )
    fig.add_scatter(
        x=[r["tenure_month"] for r in hazard],
        y=[r["hazard"] for r in hazard],
        name=_("Membership cancellation hazard"),
    )
    fig.add_vline(x=6, line_dash="dot", annotation_text=_("6 months"))
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        _("Tenure curve: activity and churn hazard by month since joining"),
        _("Month of tenure"),
        _("Share"),
    )


def survival_curves(rows: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r["group"])].append(r)
    for group, items in sorted(groups.items()):
        x = [r["time_days"] for r in items]
        fig.add_scatter(
            x=x + x[::-1],
            y=[r["ci_upper"] for r in items] + [r["ci_lower"] for r in items][::-1],
            fill="toself",
            line={"width": 0},
            opacity=0.2,
            showlegend=False,
            hoverinfo="skip",
        )
        fig.add_scatter(x=x, y=[r["survival"] for r in items], name=group, mode="lines")
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        _("Subscription survival (Kaplan–Meier, 95 % band)"),
        _("Days since start"),
        _("Still subscribed"),
    )


def lifecycle_counts(rows: list[dict[str, Any]]) -> go.Figure:
    rows = sorted(rows, key=lambda r: r["period"])
    periods = [r["period"] for r in rows]
    fig = go.Figure()
    names = {
        "new": _("New"),
        "returning": _("Returning"),
        "resurrecting": _("Resurrecting"),
        "dormant": _("Dormant"),
    }
    for key, name in names.items():
        # Dormant customers are drawn below the axis, as PostHog does.
        values = [(-1 if key == "dormant" else 1) * abs(r[key] or 0) for r in rows]
        fig.add_bar(x=periods, y=values, name=name)
    fig.update_layout(barmode="relative")
    return _layout(
        fig,
        _("Lifecycle: new, returning, resurrecting and dormant customers"),
        _("Period"),
        _("Customers"),
    )


def complaint_churn(rows: list[dict[str, Any]]) -> go.Figure:
    names = {
        "none": _("No complaint"),
        "resolved": _("Complaints resolved"),
        "unresolved": _("Unresolved complaint"),
    }
    rows = sorted(rows, key=lambda r: list(names).index(r["complaint_status"]))
    fig = go.Figure(
        go.Bar(
            x=[str(names[r["complaint_status"]]) for r in rows],
            y=[r["churn_rate"] for r in rows],
            text=["{:,}".format(r["customers"]) for r in rows],
            hovertemplate="%{x}: %{y:.1%} (%{text})<extra></extra>",
        )
    )
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, _("Churn by complaint experience"), "", _("Churned"))


def btyd_tracking(rows: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    weeks = [r["period"] for r in rows]
    fig.add_scatter(x=weeks, y=[r["actual_cumulative"] for r in rows], name=_("Actual"))
    fig.add_scatter(
        x=weeks,
        y=[r["predicted_cumulative"] for r in rows],
        name=_("BG/NBD"),
        line={"dash": "dash"},
    )
    return _layout(
        fig,
        _("Tracking: cumulative repeat purchases, actual and predicted"),
        _("Week"),
        _("Repeat purchases"),
    )


def churn_calibration(rows: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(
        x=[r["decile"] for r in rows],
        y=[r["observed_rate"] for r in rows],
        name=_("Observed churn"),
    )
    fig.add_scatter(
        x=[r["decile"] for r in rows], y=[r["mean_predicted"] for r in rows], name=_("Predicted")
    )
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        _("Churn classifier back-test: predicted and observed churn by risk decile"),
        _("Risk decile (10 = highest)"),
        _("Churn within the horizon"),
    )


def why_customers_leave(drivers: list[dict[str, Any]], stated: list[dict[str, Any]]) -> go.Figure:
    """Measured drivers (left) beside what customers said (right)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            _("Measured: what moves churn risk"),
            _("Stated: cancellation reasons and complaints"),
        ),
    )
    ordered = sorted(drivers, key=lambda r: r["importance"])
    fig.add_bar(
        x=[r["importance"] for r in ordered],
        y=[r["driver"] for r in ordered],
        orientation="h",
        name=_("Importance (AUC drop)"),
        row=1,
        col=1,
    )
    totals: dict[str, int] = defaultdict(int)
    for r in stated:
        totals["{}: {}".format(r["source"], r["reason"])] += r["count"] or 0
    items = sorted(totals.items(), key=lambda item: item[1])
    fig.add_bar(
        x=[n for _k, n in items],
        y=[k for k, _n in items],
        orientation="h",
        name=_("Count"),
        row=1,
        col=2,
    )
    fig.update_layout(showlegend=False)
    return _layout(fig, _("Why customers leave"))


def action_summary(rows: list[dict[str, Any]]) -> go.Figure:
    rows = sorted(rows, key=lambda r: -r["customers"])
    fig = go.Figure(
        go.Bar(
            x=[str(labels.ACTIONS.get(r["action"], r["action"])) for r in rows],
            y=[r["customers"] for r in rows],
        )
    )
    return _layout(fig, _("Next best action: customers per action"), "", _("Customers"))


def segment_trend(history: dict[str, list[tuple[str, int]]]) -> go.Figure:
    fig = go.Figure()
    for name, points in history.items():
        fig.add_scatter(
            x=[day for day, _members in points],
            y=[members for _day, members in points],
            mode="lines+markers",
            name=name,
        )
    return _layout(fig, _("Segments: members at each analysis"), _("As of"), _("Customers"))


def models_summary(run: AnalysisRun) -> list[tuple[str, str]]:
    """(label, value) lines describing the fitted models and how well they did."""
    lines: list[tuple[str, str]] = []
    fitted = run.fitted_models or {}
    btyd = fitted.get("btyd")
    if btyd:
        params = ", ".join("{} {:.4g}".format(k, v) for k, v in btyd["params"].items())
        lines.append((_("BG/NBD parameters"), params))
        lines.append((_("BG/NBD log-likelihood"), "{:,.2f}".format(btyd["log_likelihood"])))
        holdout = btyd.get("holdout") or {}
        if "mae" in holdout:
            lines.append(
                (
                    _("Holdout of {days:.0f} days").format(days=holdout["days"]),
                    _(
                        "predicted {predicted:,.0f} repeat purchases, actual {actual:,.0f}; MAE per customer {mae:.3f}"
                    ).format(
                        predicted=holdout["total_predicted"],
                        actual=holdout["total_actual"],
                        mae=holdout["mae"],
                    ),
                )
            )
    churn = fitted.get("churn")
    if churn:
        lines.append(
            (
                _("Churn classifier back-test"),
                _(
                    "AUC {auc:.3f}, top-decile lift {lift:.2f}, Brier {brier:.3f} ({rows} subscribers tested)"
                ).format(
                    auc=churn["auc"],
                    lift=churn["top_decile_lift"],
                    brier=churn["brier"],
                    rows=churn["test_rows"],
                ),
            )
        )
    return lines


def _class_table(rows: list[dict[str, Any]], key: str, names: dict) -> str:
    head = [
        _("Class"),
        _("Customers"),
        _("Customer share"),
        _("Profit"),
        _("Profit share"),
        _("Complaints"),
    ]
    body = "".join(
        "<tr><td>{}</td><td>{:,}</td><td>{:.1%}</td><td>{:,.0f}</td><td>{:.1%}</td><td>{:,}</td></tr>".format(
            html.escape(labels.label(names, r[key])),
            r["customers"],
            r["customer_share"] or 0,
            r["profit"] or 0,
            r["profit_share"] or 0,
            r["complaints"] or 0,
        )
        for r in rows
    )
    return "<table><tr>{}</tr>{}</table>".format(
        "".join("<th>{}</th>".format(html.escape(h)) for h in head), body
    )


def render(run: AnalysisRun, language: str) -> str:
    """The whole report as HTML text."""
    charts = run.charts
    figures = [
        churn_trend(charts["churn_trend"]),
        cohort_heatmap(charts["cohort_matrix"]),
        critical_window(charts["critical_window"]),
        loyalty_ladder(charts["loyalty_ladder"]),
        tenure_curve(charts["tenure_curve"], charts["subscription_hazard"]),
        survival_curves(charts["km_curves"]),
        pareto_chart(charts["pareto"]),
        rfm_map(charts["rfm_grid"]),
        lifecycle_counts(charts["lifecycle_counts"]),
    ]
    if charts.get("complaint_churn"):
        figures.append(complaint_churn(charts["complaint_churn"]))
    if charts.get("btyd_tracking"):
        figures.append(btyd_tracking(charts["btyd_tracking"]))
    if charts.get("churn_calibration"):
        figures.append(churn_calibration(charts["churn_calibration"]))
    if charts.get("churn_drivers") or charts.get("stated_reasons"):
        figures.append(
            why_customers_leave(charts.get("churn_drivers", []), charts.get("stated_reasons", []))
        )
    if charts.get("actions"):
        figures.append(action_summary(charts["actions"]))
    history = segment_history()
    if history:
        figures.append(segment_trend(history))
    kpis = "".join(
        '<div class="kpi"><div class="value">{}</div><div class="label">{}</div></div>'.format(
            html.escape(value), html.escape(name)
        )
        for name, value in headline(run)
    )
    sections = "".join(
        '<section class="chart">{}</section>'.format(
            fig.to_html(full_html=False, include_plotlyjs=False)
        )
        for fig in figures
    )
    tables = "<h2>{}</h2>{}<h2>{}</h2>{}".format(
        html.escape(_("Pareto ABC classes")),
        _class_table(charts["abc_summary"], "abc_class", labels.ABC_CLASSES),
        html.escape(_("Return classes")),
        _class_table(charts["return_summary"], "return_class", labels.RETURN_CLASSES),
    )
    models = "".join(
        "<tr><td>{}</td><td>{}</td></tr>".format(html.escape(name), html.escape(value))
        for name, value in models_summary(run)
    )
    if models:
        tables += "<h2>{}</h2><table>{}</table>".format(html.escape(_("Predictive models")), models)
    title = _("Loyal report as of {date}").format(date=run.as_of.date().isoformat())
    return _PAGE.format(
        language=html.escape(language),
        title=html.escape(title),
        plotly=get_plotlyjs(),
        kpis=kpis,
        sections=sections,
        tables=tables,
        note=html.escape(
            _(
                "{customers} customers analysed; churn window {window} days. Made by `loyal report`."
            ).format(customers=run.customers, window=run.settings.get("churn_window_days"))
        ),
    )


_PAGE = """<!doctype html>
<html lang="{language}"><head><meta charset="utf-8"><title>{title}</title>
<script>{plotly}</script>
<style>
body {{ font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; }}
.kpis {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .75rem; }}
.kpi {{ border: 1px solid #ddd; border-radius: .5rem; padding: .75rem; }}
.kpi .value {{ font-size: 1.4rem; font-weight: 600; }} .kpi .label {{ color: #666; font-size: .85rem; }}
.chart {{ margin: 1.5rem 0; }} table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .35rem .8rem; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }} .note {{ color: #666; font-size: .85rem; }}
</style></head><body>
<h1>{title}</h1>
<div class="kpis">{kpis}</div>
{sections}
{tables}
<p class="note">{note}</p>
</body></html>
"""
