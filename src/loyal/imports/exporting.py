"""Exporting records in the import's canonical columns, so an export can be imported again."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection

from loyal.imports import kinds
from loyal.imports.staging import vendor

BATCH_ROWS = 50_000


def _tags() -> str:
    """The customer's tags, sorted and joined with ';' (as `loyal import` reads them)."""
    names = (
        "SELECT g.name FROM customers_customer_tags ct JOIN customers_tag g ON g.id = ct.tag_id"
        " WHERE ct.customer_id = c.id"
    )
    if vendor() == "postgresql":
        return "(SELECT string_agg(name, ';' ORDER BY name) FROM ({}) t)".format(names)
    return "(SELECT group_concat(name, ';') FROM ({} ORDER BY g.name) t)".format(names)


def _primary(kind: str) -> str:
    return (
        "(SELECT p.value FROM customers_contactpoint p WHERE p.customer_id = c.id AND p.kind = '{}'"
        " ORDER BY p.is_primary DESC, p.id DESC LIMIT 1)".format(kind)
    )


def _queries() -> dict[str, str]:
    return {
        "customers": (
            "SELECT c.external_id, c.name, {email} AS email, {phone} AS phone, {wechat} AS wechat, c.stage,"
            " u.username AS owner, {tags} AS tags, c.acquisition_source,"
            " c.acquisition_channel, c.joined_at, c.birthday, c.city FROM customers_customer c"
            " LEFT JOIN accounts_user u ON u.id = c.owner_id WHERE c.source = %s ORDER BY c.id"
        ).format(
            email=_primary("email"),
            phone=_primary("phone"),
            wechat=_primary("wechat"),
            tags=_tags(),
        ),
        "orders": (
            "SELECT o.external_id AS order_id, c.external_id AS customer_id, o.ordered_at, o.status, o.channel,"
            " l.line_no, p.sku, p.name AS product_name, g.name AS category, l.quantity, l.unit_price, l.discount,"
            " l.unit_cost FROM commerce_orderline l JOIN commerce_order o ON o.id = l.order_id"
            " JOIN customers_customer c ON c.id = o.customer_id JOIN commerce_product p ON p.id = l.product_id"
            " LEFT JOIN commerce_category g ON g.id = p.category_id WHERE o.source = %s ORDER BY o.id, l.line_no"
        ),
        "subscriptions": (
            "SELECT s.external_id AS subscription_id, c.external_id AS customer_id, s.plan, s.amount, s.period,"
            " s.started_at, s.ended_at, s.cancellation_reason FROM commerce_subscription s"
            " JOIN customers_customer c ON c.id = s.customer_id WHERE s.source = %s ORDER BY s.id"
        ),
        "events": (
            "SELECT e.key AS event_id, c.external_id AS customer_id, e.occurred_at, e.session_id, e.event_type,"
            " e.page, e.dwell_seconds FROM commerce_behaviourevent e JOIN customers_customer c"
            " ON c.id = e.customer_id WHERE e.source = %s ORDER BY e.id"
        ),
        "interactions": (
            "SELECT i.external_id AS interaction_id, c.external_id AS customer_id, i.occurred_at, i.kind,"
            " i.direction, u.username AS staff, i.subject, i.body, i.outcome FROM customers_interaction i"
            " JOIN customers_customer c ON c.id = i.customer_id LEFT JOIN accounts_user u ON u.id = i.staff_id"
            " WHERE i.source = %s ORDER BY i.id"
        ),
        "consents": (
            "SELECT c.external_id AS customer_id, k.channel, k.opted_in, k.recorded_at, k.source"
            " FROM customers_consent k JOIN customers_customer c ON c.id = k.customer_id"
            " WHERE c.source = %s ORDER BY k.id"
        ),
    }


def export_batches(kind: kinds.Kind, *, source: str) -> Iterator[pa.Table]:
    """The records of ``kind`` from ``source`` as Arrow tables with the kind's canonical columns."""
    schema = kinds.arrow_schema(kind)
    with connection.cursor() as cursor:
        cursor.execute(_queries()[kind.name], [source])
        names = [column[0] for column in cursor.description]
        yielded = False
        while rows := cursor.fetchmany(BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            yield pa.table(
                {
                    name: arrow_column(values, schema.field(name).type)
                    for name, values in zip(names, columns, strict=True)
                }
            )
            yielded = True
        if not yielded:  # an empty export still has its header
            yield pa.schema([schema.field(name) for name in names]).empty_table()


def arrow_column(values: tuple, type_: pa.DataType | None) -> pa.Array:
    """Database values as an Arrow array of ``type_`` (inferred when None)."""
    if type_ is None:
        return pa.array(values)
    if (
        pa.types.is_timestamp(type_)
        or pa.types.is_date(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_decimal(type_)
    ):
        raw = pa.array(values)
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            # SQLite gives text: Django's "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC.
            if pa.types.is_timestamp(type_):
                return pc.assume_timezone(pc.cast(raw, pa.timestamp("us")), "UTC")
            return pc.cast(raw, type_)
        if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type):
            if pa.types.is_decimal(type_):
                return (
                    pc.cast(pc.cast(raw, pa.float64()), type_)
                    if pa.types.is_integer(raw.type)
                    else pc.cast(raw, type_)
                )
            return pc.cast(raw, type_)
        return raw.cast(type_) if raw.type != pa.null() else pa.nulls(len(values), type_)
    return pa.array(values, type_)
