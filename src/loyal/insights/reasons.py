"""Sentences people read for the churn reasons the engine gives (``loyal.engine.drivers``).

The engine explains a customer's churn risk as structured ``Reason(code, params)`` values
(``drivers.REASON_PARAMS`` lists every code and its params); this module words them, translated.
Templates use ``.format()`` placeholders named after the params, and those with a number use
``ngettext_lazy`` keyed on it, so "1 unresolved complaint" and "2 unresolved complaints" both
read right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy, pgettext_lazy

from loyal.engine.drivers import Reason

REASON_TEMPLATES: dict[str, Any] = {
    "early_tenure": ngettext_lazy(
        "member for only {months} month", "member for only {months} months", "months"
    ),
    "plan": _("on the {plan} plan"),
    "high_price": _("pays {amount} a month"),
    "previous_cancellations": ngettext_lazy(
        "cancelled {count} subscription before", "cancelled {count} subscriptions before", "count"
    ),
    "no_activity_days": ngettext_lazy("no visit in {days} day", "no visit in {days} days", "days"),
    "low_activity": ngettext_lazy(
        "only {count} visit in the last {days} days",
        "only {count} visits in the last {days} days",
        "count",
    ),
    # xgettext:no-python-format
    "activity_falling": _("activity down {percent}% on the previous two months"),
    "few_services": ngettext_lazy(
        "uses only {count} service", "uses only {count} services", "count"
    ),
    "no_order_days": ngettext_lazy("no order in {days} day", "no order in {days} days", "days"),
    "few_orders": ngettext_lazy(
        "only {count} order in the last {days} days",
        "only {count} orders in the last {days} days",
        "count",
    ),
    "low_spend": _("spent only {amount} in the last {days} days"),
    "unresolved_complaints": ngettext_lazy(
        "{count} unresolved complaint", "{count} unresolved complaints", "count"
    ),
    "recent_complaints": ngettext_lazy(
        "{count} complaint in the last 90 days", "{count} complaints in the last 90 days", "count"
    ),
    "past_complaints": ngettext_lazy(
        "{count} complaint in the past", "{count} complaints in the past", "count"
    ),
    "many_contacts": ngettext_lazy(
        "{count} service contact in the last {days} days",
        "{count} service contacts in the last {days} days",
        "count",
    ),
    "acquisition_channel": _("came through the {channel} channel"),
}

# Between two reasons in a list ("；" in Chinese).
REASON_SEPARATOR = pgettext_lazy("between churn reasons", "; ")
RISK_UP = _("Risk up: {reasons}")
# "few_services" with a count of 0 ("uses only 0 services" reads oddly).
NO_SERVICES = _("uses none of the services")


def _value(value: Any) -> Any:
    # 19.0 reads as 19; other amounts keep two decimals.
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 2)
    return value


def render_reason(reason: Reason | Mapping[str, Any]) -> str:
    """One reason as a translated phrase, e.g. "2 unresolved complaints".

    ``reason`` is a ``Reason`` or a stored mapping with ``code`` and ``params``. An unknown code
    is shown as is, so reasons stored by a newer engine still display.
    """
    if isinstance(reason, Mapping):
        code, params = reason["code"], reason.get("params") or {}
    else:
        code, params = reason.code, reason.params
    if code == "few_services" and params.get("count") == 0:
        return str(NO_SERVICES)
    template = REASON_TEMPLATES.get(code)
    if template is None:
        return str(code)
    values = {key: _value(value) for key, value in params.items()}
    try:
        return str(template.format(**values))
    except (KeyError, IndexError) as error:  # a plural template without its number: IndexError
        raise ValueError(
            "reason {!r} lacks a param, it has {}: build it with loyal.engine.drivers".format(
                code, sorted(values)
            )
        ) from error


def render_reasons(reasons: Iterable[Reason | Mapping[str, Any]]) -> str:
    """Reasons joined with the translated separator, e.g. "no visit in 21 days; 2 unresolved
    complaints" ("" for none)."""
    return str(REASON_SEPARATOR).join(render_reason(reason) for reason in reasons)


def render_risk(reasons: Iterable[Reason | Mapping[str, Any]]) -> str:
    """The reasons as one sentence, e.g. "Risk up: no visit in 21 days; 2 unresolved
    complaints" ("" for none)."""
    text = render_reasons(reasons)
    return str(RISK_UP).format(reasons=text) if text else ""
