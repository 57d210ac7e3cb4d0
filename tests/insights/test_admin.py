"""The admin pages of analysis results: they load, and a segment's rule is checked there too."""

from __future__ import annotations

import pytest

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
    assert Segment.objects.get(name="Lost").rules["value"] == "churned"


def test_results_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/insights/customerscore/add/").status_code == 403
