"""Full-text search over interactions that works for Chinese, on SQLite and PostgreSQL.

Chinese has no spaces between words, so word-based full-text indexes find nothing in it. Like
Elasticsearch's CJK analyser, we index overlapping two-character pieces (bigrams) of every run of
CJK text, and whole lower-cased words of other scripts: "申请退款" is indexed as 申请 请退 退款,
so a search for 退款 (refund) finds it. The terms are kept in ``Interaction.search_document``
and indexed by FTS5 on SQLite and by a GIN index on PostgreSQL (see migration 0002). A hit on the
index is then confirmed with a plain substring match, so results are exactly the messages that
contain the query.
"""

from __future__ import annotations

import importlib
import re

from django.db import connection, connections
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from loyal.customers.models import Interaction

# Han ideographs (with extension A and compatibility forms), kana and hangul.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(r"([{cjk}]+)|([^\W_{cjk}]+)".format(cjk=_CJK))


def search_terms(text: str) -> list[str]:
    """The index terms of ``text``: bigrams of CJK runs (a lone character stays whole), words."""
    terms: list[str] = []
    for cjk, word in _TOKEN.findall(text.lower()):
        if word:
            terms.append(word)
        elif len(cjk) == 1:
            terms.append(cjk)
        else:
            terms.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
    return terms


def search_document(subject: str | None, body: str | None) -> str:
    """The text stored in ``Interaction.search_document`` for a subject and body."""
    return " ".join(search_terms("{} {}".format(subject or "", body or "")))


def _indexable(terms: list[str]) -> bool:
    # A lone CJK character is not in the index when it stood inside a longer run; such queries
    # fall back to a plain substring scan.
    return bool(terms) and not any(len(t) == 1 and re.match("[{}]".format(_CJK), t) for t in terms)


def search_interactions(
    query: str, queryset: QuerySet[Interaction] | None = None
) -> QuerySet[Interaction]:
    """Interactions whose subject or body contains every word of ``query`` (case-insensitive)."""
    queryset = Interaction.objects.all() if queryset is None else queryset
    words = query.split()
    if not words:
        return queryset.none()
    terms = sorted(set(search_terms(query)))
    if _indexable(terms):
        queryset = queryset.filter(_index_match(terms))
    for word in words:
        queryset = queryset.filter(Q(body__icontains=word) | Q(subject__icontains=word))
    return queryset


def _index_match(terms: list[str]) -> Q | RawSQL:
    if connection.vendor == "postgresql":
        return RawSQL(
            "string_to_array(customers_interaction.search_document, ' ') @> %s::text[]",
            (terms,),
            output_field=BooleanField(),
        )
    if connection.vendor == "sqlite":
        match = " AND ".join('"{}"'.format(term.replace('"', '""')) for term in terms)
        return Q(
            id__in=RawSQL(
                "SELECT rowid FROM customers_interaction_fts WHERE customers_interaction_fts MATCH %s",
                (match,),
            )
        )
    return Q()


def ensure_search_index(using: str = "default", **kwargs: object) -> None:
    """Keep SQLite's full-text index in place after migrations (a post_migrate handler).

    On SQLite, a migration that alters the interactions table rebuilds it, and its triggers go
    with it; the index would then silently miss new messages. This puts back what is missing
    (see migration 0002) and re-indexes the existing messages.
    """
    # The statements that created the index, from the migration that did it.
    created_by = importlib.import_module("loyal.customers.migrations.0002_interaction_search")
    connection_ = connections[using]
    if connection_.vendor != "sqlite":
        return
    with connection_.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name LIKE 'customers_interaction_fts%%'"
        )
        present = {row[0] for row in cursor.fetchall()}
        expected = {
            "customers_interaction_fts",
            "customers_interaction_fts_insert",
            "customers_interaction_fts_delete",
            "customers_interaction_fts_update",
        }
        if expected <= present:
            return
        for name in sorted(present - {"customers_interaction_fts"}):
            if name.endswith(("_insert", "_delete", "_update")):
                cursor.execute("DROP TRIGGER IF EXISTS {}".format(name))
        for statement in created_by.SQLITE:
            if "customers_interaction_fts" in present and statement.startswith(
                "CREATE VIRTUAL TABLE"
            ):
                continue
            cursor.execute(statement)
        cursor.execute(
            "INSERT INTO customers_interaction_fts(customers_interaction_fts) VALUES ('rebuild')"
        )
