"""`loyal segment`: rules checked before they are stored, named errors, confirmed deletes."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from loyal.accounts.models import AuditEntry
from loyal.insights.models import Segment
from loyal.insights.segments import SegmentError, save_segment, segment_schema

pytestmark = pytest.mark.django_db

RULE = '{"all": [{"field": "rfm_segment", "op": "in", "value": ["at_risk"]}, {"field": "clv", "op": ">", "value": 500}]}'


def test_rules_may_use_attributes_scores_and_predictions():
    names = set(segment_schema().names)
    assert {"city", "acquisition_channel", "rfm_segment", "abc_class", "profit"} <= names
    assert {"p_alive", "clv", "churn_probability", "next_action"} <= names


def test_a_segment_is_saved_replaced_and_audited(capsys):
    call_command("segment", "save", "At risk, valuable", RULE, "--description", "call first")
    segment = Segment.objects.get(name="At risk, valuable")
    assert segment.rules["all"][1] == {"field": "clv", "op": ">", "value": 500}
    assert segment.description == "call first"
    call_command(
        "segment", "save", "At risk, valuable", '{"field": "clv", "op": ">", "value": 900}'
    )
    assert Segment.objects.get(name="At risk, valuable").rules["value"] == 900
    actions = list(
        AuditEntry.objects.filter(object_type="segment").values_list("action", flat=True)
    )
    assert sorted(actions) == ["segment.changed", "segment.created"]
    call_command("segment", "list")
    assert "not counted yet" in capsys.readouterr().out


def test_a_wrong_rule_is_named_and_nothing_is_stored():
    with pytest.raises(CommandError, match=r"rule\.all\[0\]\.field.*'rfm'"):
        call_command("segment", "save", "x", '{"all": [{"field": "rfm", "op": "=", "value": 1}]}')
    with pytest.raises(CommandError, match="not valid JSON \\(line 1, column 10\\)"):
        call_command("segment", "save", "x", '{"all": [}')
    with pytest.raises(SegmentError, match="needs a name"):
        save_segment("  ", {"field": "clv", "op": ">", "value": 1})
    assert not Segment.objects.exists()


def test_a_rule_can_come_from_a_file(tmp_path):
    path = tmp_path / "rule.json"
    path.write_text('{"field": "city", "op": "=", "value": "上海"}', encoding="utf-8")
    call_command("segment", "save", "上海客户", "@{}".format(path))
    assert Segment.objects.get(name="上海客户").rules["value"] == "上海"
    with pytest.raises(CommandError, match="Cannot read the rule file"):
        call_command("segment", "save", "x", "@{}".format(tmp_path / "missing.json"))


def test_deleting_needs_confirmation(capsys):
    call_command("segment", "save", "Lost", '{"field": "stage", "op": "=", "value": "churned"}')
    with pytest.raises(CommandError, match="--yes"):
        call_command("segment", "delete", "Lost")  # no terminal to ask on
    assert Segment.objects.filter(name="Lost").exists()
    call_command("segment", "delete", "Lost", "--yes")
    assert not Segment.objects.filter(name="Lost").exists()
    with pytest.raises(CommandError, match="no segment named Lost"):
        call_command("segment", "show", "Lost")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "unknown op '~'; use one of"),
        ("zh-hans", "未知运算符 '~'；请使用以下之一"),
        ("zh-hant", "未知運算子 '~'；請使用以下之一"),
    ],
)
def test_what_is_wrong_with_a_rule_is_said_in_the_users_language(language, expected):
    with translation.override(language), pytest.raises(SegmentError) as error:
        save_segment("Odd", {"field": "stage", "op": "~", "value": "churned"})
    assert expected in str(error.value) and "rule.op" in str(error.value)
