"""`loyal analyze` and `loyal report` on the demo store: stored results and the built-in findings."""

from __future__ import annotations

import csv
import json

import pytest
from django.core.management import CommandError, call_command

from loyal.customers.models import Customer, StageChange
from loyal.insights.models import (
    AnalysisRun,
    CustomerScore,
    KpiSnapshot,
    SegmentCount,
    SegmentMember,
)
from loyal.insights.selectors import kpi_history, latest_run

# The engine reads the records on its own connection, so they must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def test_report_before_any_analysis_says_what_to_do():
    with pytest.raises(CommandError, match="loyal analyze"):
        call_command("report")


def test_analysing_no_records_says_what_to_do(capsys):
    call_command("analyze")
    printed = capsys.readouterr().out
    assert "Analysed 0 customers" in printed and "loyal import" in printed
    assert "Churn rate" not in printed


def test_analysis_of_the_demo_store_is_stored_and_reported(tmp_path, capsys):
    call_command("demo", "--customers", "2500", "--no-serve")
    call_command(
        "segment", "save", "Champions", '{"field": "rfm_segment", "op": "=", "value": "champions"}'
    )
    call_command("segment", "save", "Alive", '{"field": "p_alive", "op": ">=", "value": 0.5}')
    call_command("analyze", "--as-of", "2026-11-01")
    run = latest_run()
    assert run is not None and run.status == AnalysisRun.Status.DONE
    assert CustomerScore.objects.count() == Customer.objects.count() == 2500
    assert KpiSnapshot.objects.filter(run=run, kpi="churn_rate_absolute").exists()
    # The engine's stages are written back, each change kept in the history.
    analysed = StageChange.objects.filter(origin="analysis")
    assert analysed.exists()
    assert set(Customer.objects.values_list("stage", flat=True)) >= {
        "customer",
        "churned",
        "prospect",
    }

    charts = run.charts
    # Findings the demo was built to contain (see loyal.demo.generator):
    # a second purchase early on keeps customers (the critical window of seed 002)...
    window = {
        r["purchases"]: r["retention_rate"]
        for r in charts["critical_window"]
        if r["anchor"] == "first_purchase" and r["window_days"] == 60
    }
    assert window[2] > window[1] + 0.15
    # ...every purchase climbs the loyalty ladder, and the fifth is near the top...
    ladder = {r["purchases"]: r["repeat_rate"] for r in charts["loyalty_ladder"]}
    assert ladder[1] < ladder[2] < ladder[5]
    # ...unresolved complaints drive customers away...
    churn = {r["complaint_status"]: r["churn_rate"] for r in charts["complaint_churn"]}
    assert churn["unresolved"] > churn["none"] + 0.1
    # ...and memberships are most fragile in the first six months.
    hazard = {
        r["tenure_month"]: r["hazard"]
        for r in charts["subscription_hazard"]
        if r["hazard"] is not None
    }
    early = [hazard[m] for m in range(1, 7) if m in hazard]
    late = [hazard[m] for m in range(7, 19) if m in hazard]
    assert sum(early) / len(early) > sum(late) / len(late)

    # Predictions are stored with the scores: BTYD for buyers, the classifier for subscribers.
    scored = CustomerScore.objects.exclude(p_alive=None)
    assert scored.count() > 1000 and scored.filter(clv__gt=0).exists()
    assert CustomerScore.objects.exclude(churn_probability=None).exists()
    assert CustomerScore.objects.exclude(reasons=[]).exists()
    assert set(CustomerScore.objects.values_list("next_action", flat=True)) >= {
        "leave_alone",
        "nurture",
    }
    assert {"btyd", "churn"} <= set(run.fitted_models)
    assert 0.5 < run.fitted_models["churn"]["auc"] <= 1
    assert KpiSnapshot.objects.filter(run=run, kpi="customer_equity", value__gt=0).exists()

    # Rule segments are counted on the scores and predictions of the run.
    counted = {c.segment.name: c.members for c in SegmentCount.objects.filter(run=run)}
    assert counted == {
        "Champions": CustomerScore.objects.filter(rfm_segment="champions").count(),
        "Alive": CustomerScore.objects.filter(p_alive__gte=0.5).count(),
    }
    assert 0 < counted["Champions"] < counted["Alive"] < 2500

    # Everything stored can be taken out again.
    call_command("export", "scores", str(tmp_path / "scores.csv"))
    with (tmp_path / "scores.csv").open(encoding="utf-8-sig") as handle:
        scores = list(csv.DictReader(handle))
    assert len(scores) == 2500
    assert {"p_alive", "clv", "churn_probability", "reasons", "next_action"} <= set(scores[0])
    assert any(row["reasons"] and "{" not in row["reasons"] for row in scores)  # sentences
    call_command("export", "scores", str(tmp_path / "champions.csv"), "--segment", "Champions")
    with (tmp_path / "champions.csv").open(encoding="utf-8-sig") as handle:
        champions = list(csv.DictReader(handle))
    assert len(champions) == counted["Champions"]
    assert {row["rfm_segment"] for row in champions} == {"champions"}
    call_command("export", "stages", str(tmp_path / "stages.xlsx"))
    call_command("export", "segments", str(tmp_path / "segments.json"))
    exported = json.loads((tmp_path / "segments.json").read_text(encoding="utf-8"))
    assert {(row["segment"], row["members"]) for row in exported} == set(counted.items())

    call_command("export", "chart", str(tmp_path / "cohorts.csv"), "--chart", "cohort_matrix")
    with (tmp_path / "cohorts.csv").open(encoding="utf-8-sig") as handle:
        assert len(list(csv.DictReader(handle))) == len(run.charts["cohort_matrix"]) > 0
    with pytest.raises(CommandError, match="--chart NAME, one of: .*loyalty_ladder"):
        call_command("export", "chart", str(tmp_path / "x.csv"))

    output = tmp_path / "report.html"
    call_command("report", "--output", str(output), "--language", "zh-hans")
    text = output.read_text(encoding="utf-8")
    assert text.count('class="plotly-graph-div"') >= 9
    assert "Champions" in text  # segments over time
    assert "cdn" not in text.split("<script>", 1)[0].lower()  # Plotly is inlined, no CDN
    printed = capsys.readouterr().out
    assert "Loyal" in printed and "AUC" in printed and "BG/NBD" in printed

    call_command("analyze", "--as-of", "2026-10-01")
    assert len(kpi_history("churn_rate_absolute")) == 2
    assert SegmentCount.objects.filter(segment__name="Alive").count() == 2
    # Only the latest run's members are kept.
    latest = SegmentCount.objects.filter(run=latest_run()).get(segment__name="Alive")
    assert SegmentMember.objects.filter(segment__name="Alive").count() == latest.members
