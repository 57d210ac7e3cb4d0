"""Names people read for the codes the engine returns (translated: en, zh-Hans, zh-Hant)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

RFM_SEGMENTS = {
    "champions": _("Champions"),
    "loyal": _("Loyal customers"),
    "potential_loyalist": _("Potential loyalists"),
    "new": _("New customers"),
    "promising": _("Promising"),
    "need_attention": _("Need attention"),
    "about_to_sleep": _("About to sleep"),
    "at_risk": _("At risk"),
    "cant_lose": _("Can't lose them"),
    "hibernating": _("Hibernating"),
    "lost": _("Lost"),
}

ABC_CLASSES = {
    # xgettext:no-python-format
    "A": _("A: key customers (first 80 % of profit)"),
    # xgettext:no-python-format
    "B": _("B: major customers (80–90 % of profit)"),
    # xgettext:no-python-format
    "C": _("C: ordinary customers (last 10 % of profit)"),
}

RETURN_CLASSES = {
    "high": _("High return"),
    "medium": _("Medium return"),
    "low": _("Low return"),
    "negative": _("Negative return"),
}

KPIS = {
    "customers": _("Customers"),
    "prospects": _("Prospects"),
    "active_customers": _("Active customers"),
    "at_risk_customers": _("At-risk customers"),
    "churned_customers": _("Churned customers"),
    "won_back_customers": _("Won-back customers"),
    "churn_rate_absolute": _("Churn rate (absolute)"),
    "churn_rate_relative": _("Churn rate (relative)"),
    "lost_customers": _("Customers lost in the period"),
    "revenue": _("Revenue in the period"),
    "orders": _("Orders in the period"),
    "buyers": _("Buyers in the period"),
    "repeat_purchase_rate": _("Repeat-purchase rate"),
    "cumulative_repeat_purchase_rate": _("Repeat-purchase rate (all time)"),
    "visitors": _("Visitors"),
    "conversion_rate": _("Conversion rate"),
    "pages_per_session": _("Pages per session"),
    "dwell_per_user": _("Dwell time per user (s)"),
    "dau": _("Daily active users"),
    "wau": _("Weekly active users"),
    "mau": _("Monthly active users"),
    "dau_mau": _("Stickiness (DAU/MAU)"),
    "mrr": _("Monthly recurring revenue"),
    "net_revenue_retention": _("Net revenue retention"),
    "profit": _("Profit (all time)"),
    "churn_window_days": _("Churn window (days)"),
    "kpi_period_days": _("KPI period (days)"),
    "customer_equity": _("Customer equity (12-month CLV)"),
    "btyd_log_likelihood": _("BG/NBD log-likelihood"),
    "btyd_holdout_mae": _("BG/NBD holdout MAE"),
    "btyd_holdout_actual": _("Holdout repeat purchases (actual)"),
    "btyd_holdout_predicted": _("Holdout repeat purchases (predicted)"),
    "churn_model_auc": _("Churn classifier AUC"),
    "churn_model_lift": _("Churn classifier top-decile lift"),
    "churn_model_brier": _("Churn classifier Brier score"),
}

ACTIONS = {
    "retain_call": _("Call to retain"),
    "win_back": _("Win back"),
    "cross_sell": _("Cross-sell"),
    "up_sell": _("Up-sell"),
    "value_added_service": _("Value-added service"),
    "nurture": _("Nurture"),
    "leave_alone": _("Leave alone"),
}

# KPIs shown as percentages.
RATES = {
    "churn_rate_absolute",
    "churn_rate_relative",
    "repeat_purchase_rate",
    "cumulative_repeat_purchase_rate",
    "conversion_rate",
    "dau_mau",
    "net_revenue_retention",
}


def label(labels: dict, code: str | None) -> str:
    """The translated name of ``code``, or the code itself when it has none."""
    if code is None:
        return "–"
    return str(labels.get(code, code))


def format_kpi(kpi: str, value: float | None) -> str:
    if value is None:
        return "–"
    if kpi in RATES:
        return "{:.1%}".format(value)
    if float(value).is_integer():
        return "{:,.0f}".format(value)
    return "{:,.2f}".format(value)
