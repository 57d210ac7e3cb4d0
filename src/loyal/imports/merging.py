"""Merging staged rows into the records: one set-based upsert per kind.

Customers and the keyed kinds are merged here, orders in ``merging_orders``; both build their
statements from ``upserts``. Every statement starts from the staging table and looks records up
by key, so its cost follows the size of the file, not of the records. Counts come from the
staged keys that already existed, never from counting whole tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loyal.imports import kinds
from loyal.imports.merging_orders import merge_orders
from loyal.imports.staging import execute, false, json_value, true
from loyal.imports.upserts import (
    changed_condition,
    count_of,
    create_missing_customers,
    customers_exist,
    initial_stage_history,
    load_result,
    outer_loop_join,
    referenced_customers,
)

if TYPE_CHECKING:
    from loyal.imports.loading import Loader, LoadResult


def merge(loader: Loader) -> LoadResult:
    return _MERGES[loader.kind.name](loader)


# ---- customers ---------------------------------------------------------------------------------


def merge_customers(loader: Loader) -> LoadResult:
    s, target, present = loader.stage.name, "customers_customer", loader.present
    # Stage changes of known customers go to the history before the record changes.
    if "stage" in present:
        execute(
            "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage, to_stage, reason, origin)"
            " SELECT c.id, %s, c.stage, s.stage, %s, 'import' FROM {s} s {join} customers_customer c"
            " ON c.source = %s AND c.external_id = s.external_id"
            " WHERE s.stage IS NOT NULL AND s.stage <> c.stage".format(s=s, join=outer_loop_join()),
            [loader.now, loader.label, loader.source],
        )
    # A column given in the file replaces the stored value (empty clears it); a column the file
    # lacks leaves it alone. Only rows that really change are written (re-imports change nothing).
    # In the expressions, x is the staged row, u its owner, {t} the stored record.
    new_values = {
        c: "COALESCE(x.{}, '')".format(c)
        for c in ("name", "acquisition_source", "acquisition_channel", "city")
    }
    new_values["joined_at"] = "COALESCE(x.joined_at, {t}.joined_at)"
    new_values["birthday"] = "x.birthday"
    new_values["owner_id"] = "u.id"
    new_values["attributes"] = json_value("COALESCE(x.attributes, '{{}}')")
    new_values["stage"] = "COALESCE(x.stage, {t}.stage)"
    given = {"owner_id": "owner", "attributes": kinds.ATTRIBUTES}
    updates = {c: v for c, v in new_values.items() if given.get(c, c) in present}
    changed = 0
    if updates:
        columns = list(updates)
        values = [v.format(t=target) for v in updates.values()]
        params: list = []
        if "stage" in updates:
            columns.append("stage_changed_at")
            values.append(
                "CASE WHEN x.stage IS NOT NULL AND x.stage <> {t}.stage THEN %s ELSE {t}.stage_changed_at END".format(
                    t=target
                )
            )
            params.append(loader.now)
        columns.append("updated_at")
        values.append("%s")
        params.append(loader.now)
        differs = " OR ".join(
            "c.{} IS DISTINCT FROM {}".format(c, v.format(t="c")) for c, v in updates.items()
        )
        staged = "{s} x LEFT JOIN accounts_user u ON u.username = x.owner".format(s=s)
        # Matched by key from the staging side, then each record takes its staged row's values.
        changed = execute(
            "UPDATE {t} SET ({columns}) = (SELECT {values} FROM {staged} WHERE x.external_id = {t}.external_id)"
            " WHERE {t}.id IN (SELECT c.id FROM {staged} {join} customers_customer c ON c.source = %s"
            " AND c.external_id = x.external_id WHERE {differs})".format(
                t=target,
                columns=", ".join(columns),
                values=", ".join(values),
                staged=staged,
                join=outer_loop_join(),
                differs=differs,
            ),
            [*params, loader.source],
        )
    created = execute(
        "INSERT INTO customers_customer (source, external_id, name, stage, stage_changed_at, owner_id,"
        " acquisition_source, acquisition_channel, joined_at, birthday, city, attributes, created_at, updated_at)"
        " SELECT %s, s.external_id, COALESCE(s.name, ''), COALESCE(s.stage, 'prospect'),"
        " COALESCE(s.joined_at, %s), u.id, COALESCE(s.acquisition_source, ''), COALESCE(s.acquisition_channel, ''),"
        " COALESCE(s.joined_at, %s), s.birthday, COALESCE(s.city, ''), {attrs}, %s, %s"
        " FROM {s} s LEFT JOIN accounts_user u ON u.username = s.owner WHERE NOT {exists}".format(
            s=s,
            attrs=json_value("COALESCE(s.attributes, '{}')"),
            exists=customers_exist(loader, "external_id"),
        ),
        [loader.source, loader.now, loader.now, loader.now, loader.now, loader.source],
    )
    initial_stage_history(loader, "external_id")
    _merge_contact_points(loader)
    if "tags" in present:
        _merge_tags(loader)
    return load_result(loader, created, created + changed)


def _merge_contact_points(loader: Loader) -> None:
    s = loader.stage.name
    for kind in ("email", "phone", "wechat"):
        if kind not in loader.present:
            continue
        # A new address becomes the primary one; the old ones stay on the record.
        execute(
            "UPDATE customers_contactpoint SET is_primary = {f} WHERE id IN (SELECT p.id FROM {s} s {join}"
            " customers_customer c ON c.source = %s AND c.external_id = s.external_id {join} customers_contactpoint p"
            " ON p.customer_id = c.id WHERE p.kind = %s AND p.is_primary = {t} AND s.{k} IS NOT NULL"
            " AND s.{k} <> p.value)".format(
                f=false(), t=true(), s=s, join=outer_loop_join(), k=kind
            ),
            [loader.source, kind],
        )
        execute(
            "INSERT INTO customers_contactpoint (customer_id, kind, value, is_primary)"
            " SELECT c.id, %s, s.{k}, {t} FROM {s} s {join} customers_customer c ON c.source = %s"
            " AND c.external_id = s.external_id WHERE s.{k} IS NOT NULL"
            " ON CONFLICT (customer_id, kind, value) DO UPDATE SET is_primary = {t}"
            " WHERE customers_contactpoint.is_primary <> {t}".format(
                s=s, join=outer_loop_join(), k=kind, t=true()
            ),
            [kind, loader.source],
        )


def _merge_tags(loader: Loader) -> None:
    tags, s = loader.tag_stage.name, loader.stage.name
    execute(
        "INSERT INTO customers_tag (name) SELECT DISTINCT tag FROM {t} WHERE true ON CONFLICT (name) DO NOTHING".format(
            t=tags
        )
    )
    # The file's tags replace the customer's tags.
    execute(
        "DELETE FROM customers_customer_tags WHERE id IN (SELECT ct.id FROM {s} s {join} customers_customer c"
        " ON c.source = %s AND c.external_id = s.external_id {join} customers_customer_tags ct ON ct.customer_id = c.id"
        " {join} customers_tag g ON g.id = ct.tag_id WHERE NOT EXISTS (SELECT 1 FROM {t} t"
        " WHERE t.external_id = s.external_id AND t.tag = g.name))".format(
            s=s, t=tags, join=outer_loop_join()
        ),
        [loader.source],
    )
    execute(
        "INSERT INTO customers_customer_tags (customer_id, tag_id) SELECT DISTINCT c.id, g.id FROM {t} t"
        " {join} customers_customer c ON c.source = %s AND c.external_id = t.external_id"
        " {join} customers_tag g ON g.name = t.tag WHERE true ON CONFLICT (customer_id, tag_id) DO NOTHING".format(
            t=tags, join=outer_loop_join()
        ),
        [loader.source],
    )


# ---- subscriptions, events, interactions, consents ---------------------------------------------


def _keyed_upsert(
    loader: Loader,
    table: str,
    key: tuple[str, str],
    columns: dict[str, str],
    select_from: str,
    params: list,
    where: str = "true",
) -> tuple[int, int]:
    """Upsert rows keyed by (source, key) into ``table``; returns (created, changed)."""
    s = loader.stage.name
    target_key, staged_key = key
    existing = count_of(
        "SELECT COUNT(*) FROM {s} s WHERE {where} AND EXISTS (SELECT 1 FROM {t} r WHERE r.source = %s"
        " AND r.{tk} = s.{sk})".format(s=s, where=where, t=table, tk=target_key, sk=staged_key),
        [loader.source],
    )
    rows = count_of("SELECT COUNT(*) FROM {s} s WHERE {where}".format(s=s, where=where), [])
    compared = {c: "excluded." + c for c in columns if c not in ("source", target_key)}
    changed = execute(
        "INSERT INTO {t} ({names}) SELECT {values} FROM {select_from} WHERE {where}"
        " ON CONFLICT (source, {tk}) DO UPDATE SET {set} WHERE {changed}".format(
            t=table,
            names=", ".join(columns),
            values=", ".join(columns.values()),
            select_from=select_from,
            where=where,
            tk=target_key,
            set=", ".join("{} = {}".format(c, v) for c, v in compared.items()),
            changed=changed_condition(table, compared),
        ),
        params,
    )
    return rows - existing, changed


def merge_subscriptions(loader: Loader) -> LoadResult:
    customers = create_missing_customers(
        loader, "customer", referenced_customers(loader, "started_at")
    )
    created, changed = _keyed_upsert(
        loader,
        "commerce_subscription",
        ("external_id", "subscription_id"),
        {
            "source": "%s",
            "external_id": "s.subscription_id",
            "customer_id": "c.id",
            "plan": "s.plan",
            "amount": "s.amount",
            "period": "COALESCE(s.period, 'month')",
            "started_at": "s.started_at",
            "ended_at": "s.ended_at",
            "cancellation_reason": "COALESCE(s.cancellation_reason, '')",
        },
        "{s} s {join} customers_customer c ON c.source = %s AND c.external_id = s.customer_id".format(
            s=loader.stage.name, join=outer_loop_join()
        ),
        [loader.source, loader.source],
    )
    return load_result(loader, created, changed, customers=customers)


def _first_of_key(loader: Loader) -> str:
    """Only the first of several staged rows with the same key (identical rows without an id)."""
    return "s.row_number IN (SELECT MIN(row_number) FROM {} GROUP BY key)".format(loader.stage.name)


def merge_events(loader: Loader) -> LoadResult:
    s = loader.stage.name
    customers = create_missing_customers(
        loader, "prospect", referenced_customers(loader, "occurred_at")
    )
    # Events never change once they happened: a known key is skipped.
    created = execute(
        "INSERT INTO commerce_behaviourevent (source, key, customer_id, occurred_at, session_id, event_type, page,"
        " dwell_seconds) SELECT %s, s.key, c.id, s.occurred_at, COALESCE(s.session_id, ''),"
        " COALESCE(s.event_type, 'view'), COALESCE(s.page, ''), s.dwell_seconds FROM {s} s {join} customers_customer c"
        " ON c.source = %s AND c.external_id = s.customer_id WHERE {first} ON CONFLICT (source, key) DO NOTHING".format(
            s=s, join=outer_loop_join(), first=_first_of_key(loader)
        ),
        [loader.source, loader.source],
    )
    return load_result(loader, created, created, customers=customers)


def merge_interactions(loader: Loader) -> LoadResult:
    customers = create_missing_customers(
        loader, "prospect", referenced_customers(loader, "occurred_at")
    )
    created, changed = _keyed_upsert(
        loader,
        "customers_interaction",
        ("external_id", "key"),
        {
            "source": "%s",
            "external_id": "s.key",
            "customer_id": "c.id",
            "occurred_at": "s.occurred_at",
            "kind": "s.kind",
            "direction": "COALESCE(s.direction, '')",
            "staff_id": "u.id",
            "subject": "COALESCE(s.subject, '')",
            "body": "COALESCE(s.body, '')",
            "outcome": "COALESCE(s.outcome, '')",
            "search_document": "s.search_document",
        },
        "{s} s {join} customers_customer c ON c.source = %s AND c.external_id = s.customer_id"
        " LEFT JOIN accounts_user u ON u.username = s.staff".format(
            s=loader.stage.name, join=outer_loop_join()
        ),
        [loader.source, loader.source],
        where=_first_of_key(loader),
    )
    return load_result(loader, created, changed, customers=customers)


def merge_consents(loader: Loader) -> LoadResult:
    s = loader.stage.name
    customers = create_missing_customers(
        loader, "prospect", referenced_customers(loader, "recorded_at")
    )
    existing = count_of(
        "SELECT COUNT(*) FROM {s} s {join} customers_customer c ON c.source = %s AND c.external_id = s.customer_id"
        " WHERE EXISTS (SELECT 1 FROM customers_consent k WHERE k.customer_id = c.id AND k.channel = s.channel"
        " AND k.recorded_at = s.recorded_at)".format(s=s, join=outer_loop_join()),
        [loader.source],
    )
    changed = execute(
        "INSERT INTO customers_consent (customer_id, channel, opted_in, recorded_at, source)"
        " SELECT c.id, s.channel, s.opted_in, s.recorded_at, COALESCE(s.source, '') FROM {s} s {join}"
        " customers_customer c ON c.source = %s AND c.external_id = s.customer_id WHERE true"
        " ON CONFLICT (customer_id, channel, recorded_at) DO UPDATE SET opted_in = excluded.opted_in,"
        " source = excluded.source WHERE customers_consent.opted_in IS DISTINCT FROM excluded.opted_in"
        " OR customers_consent.source IS DISTINCT FROM excluded.source".format(
            s=s, join=outer_loop_join()
        ),
        [loader.source],
    )
    return load_result(loader, loader.stage.rows - existing, changed, customers=customers)


_MERGES = {
    "customers": merge_customers,
    "orders": merge_orders,
    "subscriptions": merge_subscriptions,
    "events": merge_events,
    "interactions": merge_interactions,
    "consents": merge_consents,
}
