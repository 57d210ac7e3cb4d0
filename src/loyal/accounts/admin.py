from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from loyal.accounts.models import AuditEntry, User


@admin.register(User)
class StaffAdmin(UserAdmin):
    list_display = ("username", "display_name", "role", "is_active")
    list_filter = ("role", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("Loyal", {"fields": ("role", "display_name")}))


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "origin", "action", "object_type", "object_id")
    list_filter = ("origin", "action")
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
