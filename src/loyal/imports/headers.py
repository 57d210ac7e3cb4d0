"""Matching the columns of a file's header row to the canonical columns of one kind.

A file may name its columns as it likes: "Order ID", " order_id " and "ORDER-ID" all find
order_id, and a mapping (``--map "订单号=order_id"``) names the rest. Problems that stop a whole
file before any row is read raise :class:`ImportFileError`, whose message says how to fix them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _

from loyal.imports.kinds import KINDS, Kind

ATTRIBUTE_PREFIX = "attr."


class ImportFileError(Exception):
    """A problem that stops a whole file before any row is read; the message says how to fix it."""


def resolve_kind(kind: Kind | str) -> Kind:
    """The :class:`Kind` itself, or the one named ``kind`` (``"orders"``...)."""
    if isinstance(kind, Kind):
        return kind
    try:
        return KINDS[kind]
    except KeyError:
        raise ImportFileError(
            _('There is no kind of import called "{kind}"; use one of: {kinds}.').format(
                kind=kind, kinds=", ".join(KINDS)
            )
        ) from None


def _header_key(name: str) -> str:
    # "Order ID", " order_id " and "ORDER-ID" all name order_id.
    return re.sub(r"[\s\-]+", "_", name.strip()).casefold()


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


@dataclass(frozen=True)
class Header:
    """How the columns of one file map onto the columns of one kind."""

    kind: Kind
    file_name: str
    file_columns: tuple[str, ...]
    # Per file column: a canonical column name, "attr.<name>", or None when the column is ignored.
    targets: tuple[str | None, ...]
    warnings: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns present, in the kind's order."""
        found = set(self.targets)
        return tuple(name for name in self.kind.column_names if name in found)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(
            target[len(ATTRIBUTE_PREFIX) :]
            for target in self.targets
            if target is not None and target.startswith(ATTRIBUTE_PREFIX)
        )


def resolve_header(
    kind: Kind | str,
    file_columns: Sequence[str],
    *,
    file_name: str,
    mapping: Mapping[str, str | None] | None = None,
) -> Header:
    """Match a file's column names to the kind's columns.

    ``mapping`` sends file column names to canonical names (or ``attr.<name>``; ``""`` or None
    ignores the column). Other columns match a canonical name ignoring case, surrounding spaces,
    and spaces or hyphens instead of underscores. Raises :class:`ImportFileError` when a required
    column is missing or two file columns land on the same canonical column.
    """
    kind = resolve_kind(kind)
    file_columns = tuple(file_columns)
    canonical = {_header_key(name): name for name in kind.column_names}
    mapping = dict(mapping or {})
    folded_mapping = {key.strip().casefold(): key for key in mapping}
    used_keys: set[str] = set()
    targets: list[str | None] = []
    unknown: list[str] = []
    unnamed: list[int] = []

    for position, name in enumerate(file_columns, start=1):
        key = name if name in mapping else folded_mapping.get(name.strip().casefold())
        explicit = key is not None
        if key is not None:
            used_keys.add(key)
            wanted = (mapping[key] or "").strip()
            if not wanted:
                targets.append(None)  # mapped to nothing: ignored on purpose, so no warning
                continue
        else:
            wanted = name.strip()
            if not wanted:
                unnamed.append(position)
                targets.append(None)
                continue
        if (
            wanted[: len(ATTRIBUTE_PREFIX)].casefold() == ATTRIBUTE_PREFIX
            and kind.allows_attributes
        ):
            attribute = wanted[len(ATTRIBUTE_PREFIX) :].strip()
            if attribute:
                targets.append(ATTRIBUTE_PREFIX + attribute)
                continue
        target = canonical.get(_header_key(wanted))
        if target is None and explicit:
            raise ImportFileError(
                _(
                    '{file}: the mapping sends column "{column}" to "{target}", which is not a '
                    "column of {kind}. Use one of: {columns}{attributes}."
                ).format(
                    file=file_name,
                    column=name,
                    target=wanted,
                    kind=kind.name,
                    columns=", ".join(kind.column_names),
                    attributes=_(", or attr.<name>") if kind.allows_attributes else "",
                )
            )
        if target is None:
            unknown.append(name)
        targets.append(target)

    sources: dict[str, list[str]] = {}
    for name, target in zip(file_columns, targets, strict=True):
        if target is not None:
            sources.setdefault(target, []).append(name)
    for target, names in sources.items():
        if len(names) > 1:
            raise ImportFileError(
                _(
                    '{file}: columns {columns} all give "{target}"; keep one, or map the others '
                    'elsewhere (--map "{column}=").'
                ).format(file=file_name, columns=_quoted(names), target=target, column=names[-1])
            )

    missing = [name for name in kind.required_columns if name not in sources]
    if missing:
        example = unknown[0] if unknown else _("column in the file")
        raise ImportFileError(
            _(
                "{file} has no {missing} column, which {kind} need. The columns found are: "
                '{found}. If one of them holds it, map it: --map "{example}={first}".'
            ).format(
                file=file_name,
                missing=_quoted(missing),
                kind=kind.name,
                found=_quoted([name for name in file_columns if name.strip()]) or _("none"),
                example=example,
                first=missing[0],
            )
        )

    warnings: list[str] = []
    if unknown:
        hint = _('--map "{column}=<column>"').format(column=unknown[0])
        if kind.allows_attributes:
            hint += _(
                ', or keep it as a free attribute with --map "{column}=attr.{column}"'
            ).format(column=unknown[0])
        warnings.append(
            _(
                "{file}: ignored {count} column(s) that {kind} do not use: {columns}. To import "
                "one, map it to a column: {hint}. The columns of {kind} are: {canonical}."
            ).format(
                file=file_name,
                count=len(unknown),
                kind=kind.name,
                columns=_quoted(unknown),
                hint=hint,
                canonical=", ".join(kind.column_names),
            )
        )
    if unnamed:
        warnings.append(
            _(
                "{file}: ignored column(s) {positions}, which have no name in the header row."
            ).format(file=file_name, positions=", ".join(str(position) for position in unnamed))
        )
    unused = [key for key in mapping if key not in used_keys]
    if unused:
        warnings.append(
            _("{file}: the mapping names {columns}, but the file has no such column.").format(
                file=file_name, columns=_quoted(unused)
            )
        )
    return Header(kind, file_name, file_columns, tuple(targets), tuple(warnings))
