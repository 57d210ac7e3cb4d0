from django.contrib import admin

from loyal.customers.models import ContactPoint, Customer, Interaction, StageChange


class ContactPointInline(admin.TabularInline):
    model = ContactPoint
    extra = 0


class StageChangeInline(admin.TabularInline):
    model = StageChange
    extra = 0
    fk_name = "customer"
    readonly_fields = ("changed_at", "from_stage", "to_stage", "reason", "origin", "changed_by")
    can_delete = False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "name", "stage", "owner", "acquisition_channel", "joined_at")
    list_filter = ("stage", "acquisition_channel", "source")
    search_fields = ("external_id", "name")
    # Stage changes go through services.change_stage, so the history stays complete.
    readonly_fields = ("stage", "stage_changed_at")
    inlines = [ContactPointInline, StageChangeInline]
    list_select_related = ("owner",)


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "customer", "kind", "direction", "staff", "subject", "outcome")
    list_filter = ("kind", "direction", "outcome")
    raw_id_fields = ("customer",)
    exclude = ("search_document",)
