from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "loyal.customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        from loyal.customers.search import ensure_search_index

        post_migrate.connect(ensure_search_index, sender=self)
