"""Analysis results in Django's admin: runs and scores read-only, segments editable (their rules
are checked as `loyal segment save` checks them)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from loyal.insights.models import AnalysisRun, CustomerScore, Segment


class ReadOnlyAdmin(admin.ModelAdmin):
    """Results are written by `loyal analyze` only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AnalysisRun)
class AnalysisRunAdmin(ReadOnlyAdmin):
    list_display = ("as_of", "status", "customers", "seconds", "finished_at")
    list_filter = ("status",)
    exclude = ("charts", "fitted_models")


@admin.register(CustomerScore)
class CustomerScoreAdmin(ReadOnlyAdmin):
    list_display = (
        "customer",
        "stage",
        "rfm_segment",
        "abc_class",
        "profit",
        "p_alive",
        "clv",
        "churn_probability",
        "next_action",
    )
    list_filter = ("stage", "rfm_segment", "abc_class", "return_class", "next_action")
    search_fields = ("customer__external_id", "customer__name")
    list_select_related = ("customer",)
    ordering = ("-action_priority",)


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ("name", "description", "expected_service", "rules")
        help_texts = {
            "rules": _(
                'A rule as JSON, e.g. {"field": "rfm_segment", "op": "=", "value": "at_risk"}.'
            )
        }

    def clean_rules(self):
        # Imported here: the check needs the engine (Ibis, DuckDB), which every start of Django
        # (each `loyal` command) would otherwise import with the admin.
        from loyal.insights.segments import SegmentError, check_rule

        rules = self.cleaned_data["rules"]
        try:
            check_rule(self.cleaned_data.get("name", ""), rules)
        except SegmentError as error:
            raise forms.ValidationError(str(error)) from None
        return rules


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ("name", "description", "latest_members", "rule")
    search_fields = ("name", "description")

    @admin.display(description=_("members at the latest analysis"))
    def latest_members(self, segment: Segment) -> int | None:
        latest = segment.counts.order_by("-as_of", "-run_id").first()
        return latest.members if latest else None

    @admin.display(description=_("rule"))
    def rule(self, segment: Segment) -> str:
        return json.dumps(segment.rules, ensure_ascii=False)

    # Changes made here are audited as `loyal segment save` and `delete` audit theirs.
    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            obj.audit("segment.changed" if change else "segment.created", request.user)

    def delete_model(self, request, obj):
        with transaction.atomic():
            obj.audit("segment.deleted", request.user)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for segment in queryset:
                segment.audit("segment.deleted", request.user)
            super().delete_queryset(request, queryset)
