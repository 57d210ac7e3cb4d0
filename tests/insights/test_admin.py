"""The admin pages of analysis results: they load, and a segment's rule is checked (and its
changes audited) there as `loyal segment` does."""

from __future__ import annotations

import pytest

from loyal.accounts.models import AuditEntry
from loyal.insights.models import Segment

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["analysisrun", "customerscore", "segment"])
def test_changelists_load(admin_client, model):
    response = admin_client.get("/admin/insights/{}/".format(model))
    assert response.status_code == 200


def test_a_segment_with_a_wrong_rule_is_refused_with_the_reason(admin_client):
    form = {"name": "Lost", "description": "", "expected_service": ""}
    response = admin_client.post(
        "/admin/insights/segment/add/",
        {**form, "rules": '{"field": "stag", "op": "=", "value": "churned"}'},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "rule.field" in response.content.decode() and not Segment.objects.exists()
    response = admin_client.post(
        "/admin/insights/segment/add/",
        {**form, "rules": '{"field": "stage", "op": "=", "value": "churned"}'},
    )
    assert response.status_code == 302
    segment = Segment.objects.get(name="Lost")
    assert segment.rules["value"] == "churned"

    response = admin_client.post(
        "/admin/insights/segment/{}/delete/".format(segment.pk), {"post": "yes"}
    )
    assert response.status_code == 302 and not Segment.objects.exists()
    entries = AuditEntry.objects.filter(object_type="segment").order_by("pk")
    assert [(e.action, e.origin, e.actor.username) for e in entries] == [
        ("segment.created", "web", "admin"),
        ("segment.deleted", "web", "admin"),
    ]
    assert entries[0].details == {"name": "Lost", "rule": segment.rules}


def test_results_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/insights/customerscore/add/").status_code == 403
