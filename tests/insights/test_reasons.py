"""Churn reasons worded for people: one template per engine code, placeholders filled."""

from __future__ import annotations

import string

import pytest

from loyal.engine.drivers import REASON_PARAMS, Reason
from loyal.insights.reasons import (
    REASON_TEMPLATES,
    render_reason,
    render_reasons,
    render_risk,
)

# The Chinese (simplified) of each template, for the catalogue's owner to add to the .po files:
# msgid (singular for plural templates) -> msgstr (Chinese has one plural form).
ZH_HANS = {
    "member for only {months} month": "仅入会 {months} 个月",
    "on the {plan} plan": "使用 {plan} 套餐",
    "pays {amount} a month": "每月支付 {amount}",
    "cancelled {count} subscription before": "此前已取消 {count} 次订阅",
    "no visit in {days} day": "{days} 天未访问",
    "only {count} visit in the last {days} days": "近 {days} 天仅访问 {count} 次",
    "activity down {percent}% on the previous two months": "活跃度较前两个月下降 {percent}%",
    "uses only {count} service": "仅使用 {count} 项服务",
    "no order in {days} day": "{days} 天未下单",
    "only {count} order in the last {days} days": "近 {days} 天仅下单 {count} 次",
    "spent only {amount} in the last {days} days": "近 {days} 天仅消费 {amount}",
    "{count} unresolved complaint": "{count} 个投诉未解决",
    "{count} complaint in the last 90 days": "近 90 天投诉 {count} 次",
    "{count} complaint in the past": "曾投诉 {count} 次",
    "{count} service contact in the last {days} days": "近 {days} 天联系客服 {count} 次",
    "came through the {channel} channel": "来自 {channel} 渠道",
    "Risk up: {reasons}": "风险上升：{reasons}",
    "; ": "；",
}

SAMPLE_PARAMS = {"months": 3, "plan": "basic", "amount": 69.0, "count": 2, "days": 21,
                 "percent": 60, "channel": "ads"}  # fmt: skip


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def msgids(template) -> list[str]:
    """The English source texts of a lazy template: its msgid, or singular and plural."""
    # Django's lazy proxies keep their arguments: gettext_lazy's message in _args,
    # ngettext_lazy's singular and plural in _kw.
    kw = template._kw
    return [kw["singular"], kw["plural"]] if "singular" in kw else [template._args[0]]


def test_every_engine_code_has_a_template():
    assert set(REASON_TEMPLATES) == set(REASON_PARAMS)


@pytest.mark.parametrize("code", sorted(REASON_PARAMS))
def test_templates_use_exactly_the_engine_params(code):
    for text in msgids(REASON_TEMPLATES[code]):
        assert fields(text) == set(REASON_PARAMS[code]), text


@pytest.mark.parametrize("code", sorted(REASON_PARAMS))
def test_rendering_fills_every_placeholder(code):
    params = {name: SAMPLE_PARAMS[name] for name in REASON_PARAMS[code]}
    text = render_reason(Reason(code, params))
    assert "{" not in text and "}" not in text
    for value in params.values():
        shown = int(value) if isinstance(value, float) and value.is_integer() else value
        assert str(shown) in text


def test_plural_forms_follow_the_number():
    assert render_reason(Reason("unresolved_complaints", {"count": 1})) == "1 unresolved complaint"
    assert render_reason(Reason("unresolved_complaints", {"count": 2})) == "2 unresolved complaints"
    assert render_reason(Reason("no_activity_days", {"days": 21})) == "no visit in 21 days"
    assert render_reason(Reason("few_services", {"count": 1})) == "uses only 1 service"
    assert render_reason(Reason("few_services", {"count": 0})) == "uses none of the services"


def test_reasons_read_as_one_sentence():
    reasons = [
        Reason("no_activity_days", {"days": 21}),
        {"code": "unresolved_complaints", "params": {"count": 2}},  # as stored
    ]
    assert render_reasons(reasons) == "no visit in 21 days; 2 unresolved complaints"
    assert render_risk(reasons) == "Risk up: no visit in 21 days; 2 unresolved complaints"
    assert render_reasons([]) == "" and render_risk([]) == ""
    assert render_reason(Reason("high_price", {"amount": 19.5})) == "pays 19.5 a month"


def test_unknown_codes_show_as_is_and_missing_params_are_reported():
    assert (
        render_reason(Reason("new_code_from_a_newer_engine", {})) == "new_code_from_a_newer_engine"
    )
    with pytest.raises(ValueError, match="lacks a param"):
        render_reason(Reason("no_activity_days", {}))


def test_chinese_translations_cover_every_template_with_the_same_placeholders():
    english = [text for code in REASON_PARAMS for text in msgids(REASON_TEMPLATES[code])]
    singular = [text for text in english if text in ZH_HANS]
    assert len(singular) == len(REASON_PARAMS)  # one msgid per template
    for source, chinese in ZH_HANS.items():
        assert fields(chinese) == fields(source), source
        filled = chinese.format(**SAMPLE_PARAMS, reasons="…")
        assert "{" not in filled
