from django.contrib import admin

from loyal.commerce.models import Category, Order, OrderLine, Product, Subscription


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    raw_id_fields = ("product",)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("external_id", "customer", "ordered_at", "status", "channel", "revenue", "cost")
    list_filter = ("status", "channel")
    search_fields = ("external_id",)
    raw_id_fields = ("customer",)
    inlines = [OrderLineInline]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("external_id", "customer", "plan", "amount", "period", "started_at", "ended_at")
    list_filter = ("plan", "period")
    raw_id_fields = ("customer",)


admin.site.register(Category)
admin.site.register(Product, list_display=("sku", "name", "category", "price", "unit_cost"))
