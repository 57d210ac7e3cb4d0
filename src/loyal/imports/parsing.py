"""Turning a table of raw text into Loyal's canonical Arrow columns, naming every bad value.

The reader (``loyal.imports.reading``) hands this module tables of strings exactly as they stand in
a file; the API's bulk endpoints can do the same through :func:`parse_table`. Each value is
checked against its column in ``loyal.imports.kinds``: a row with any bad value goes to
``rejected`` (raw text, so it can be written back for the user to fix) and every problem becomes a
:class:`RowError` naming file, row, column, value and how to fix it.

Speed comes from trying a vectorised Arrow conversion first (it succeeds on clean, ISO-formatted
columns, the common case) and only falling back to Python for the values Arrow refuses, parsed once
per distinct value: dates, prices and codes repeat a lot, so the fallback stays cheap.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _

from loyal.imports.kinds import (
    ARROW_TYPES,
    ATTRIBUTES,
    KINDS,
    ROW_NUMBER,
    Column,
    ColumnType,
    Kind,
)

ATTRIBUTE_PREFIX = "attr."
_DECIMAL_TYPE = ARROW_TYPES[ColumnType.DECIMAL]
_TIMESTAMP_TYPE = ARROW_TYPES[ColumnType.DATETIME]
_DECIMAL_PLACES = _DECIMAL_TYPE.scale
_DECIMAL_QUANTUM = Decimal(1).scaleb(-_DECIMAL_PLACES)
_DECIMAL_LIMIT = Decimal(10) ** (_DECIMAL_TYPE.precision - _DECIMAL_TYPE.scale)
_SHOWN_CHARACTERS = 80  # longer values are cut in messages so one error stays one line


class ImportFileError(Exception):
    """A problem that stops a whole file before any row is read; the message says how to fix it."""


@dataclass(frozen=True)
class RowError:
    """One bad value (or bad row, when ``column`` is empty) of an import."""

    file: str
    row: int  # as a spreadsheet shows it: the header is row 1
    column: str  # as the file names it
    value: str | None
    message: str  # names the value and the rule, e.g. '"2024-13-45" is not a date (...)'
    canonical: str = ""  # Loyal's name for the column, when the file calls it something else

    @property
    def reason(self) -> str:
        """The error without file and row, as the rejects file shows it."""
        if not self.column:
            return self.message
        if self.canonical and self.canonical != self.column:
            return _('column "{column}" ({canonical}): {message}').format(
                column=self.column, canonical=self.canonical, message=self.message
            )
        return _('column "{column}": {message}').format(column=self.column, message=self.message)

    def __str__(self) -> str:
        return _("{file}, row {row}, {reason}").format(
            file=self.file, row=self.row, reason=self.reason
        )


@dataclass(frozen=True)
class ParsedBatch:
    """The outcome of parsing a block of rows.

    ``valid`` holds the canonical columns found (typed as ``kinds.ARROW_TYPES``), ``attributes``
    for customers with ``attr.*`` columns, and ``row_number``. ``rejected`` holds the rows with
    any error, as raw text under the file's own column names, plus ``row_number``.
    """

    valid: pa.Table
    rejected: pa.Table
    errors: list[RowError]


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


def resolve_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or an :class:`ImportFileError` saying what to use."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFileError(
            _('"{zone}" is not a known time zone; use a name such as Asia/Shanghai or UTC.').format(
                zone=name
            )
        ) from None


# --- Header --------------------------------------------------------------------------------------


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


# --- Single values, in Python (the fallback and the source of every message) -------------------


class _BadValue(Exception):
    """A value that does not fit its column; the message is user-facing."""


def _show(value: str) -> str:
    return value if len(value) <= _SHOWN_CHARACTERS else value[: _SHOWN_CHARACTERS - 1] + "…"


def _normalized(text: str) -> str:
    # NFKC turns full-width digits, letters and signs (１２３, ￥, ：) into their ASCII forms.
    return text.strip() if text.isascii() else unicodedata.normalize("NFKC", text).strip()


_NUMBER_RE = re.compile(
    r"(?P<sign>[+-])?\s*[¥$€£]?\s*(?P<sign2>[+-])?\s*"
    r"(?P<digits>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?|[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<exponent>[eE][+-]?[0-9]+)?\s*元?"
)


def _number_text(text: str) -> str | None:
    """Plain number text from what people type: "¥1,234.50", "-$3", "１２元"; None if none."""
    match = _NUMBER_RE.fullmatch(_normalized(text))
    if match is None or (match["sign"] and match["sign2"]):
        return None
    sign = match["sign"] or match["sign2"] or ""
    return sign + match["digits"].replace(",", "") + (match["exponent"] or "")


def _not_a_number(text: str) -> _BadValue:
    return _BadValue(
        _('"{value}" is not a number (expected e.g. 12.50, 1,234.50 or ¥12.50)').format(
            value=_show(text)
        )
    )


def _too_large(text: str) -> _BadValue:
    return _BadValue(_('"{value}" is too large').format(value=_show(text)))


def _one_decimal(text: str) -> Decimal:
    number = _number_text(text)
    if number is None:
        raise _not_a_number(text)
    value = Decimal(number)
    if value.adjusted() >= _DECIMAL_TYPE.precision - _DECIMAL_PLACES:
        raise _too_large(text)
    rounded = value.quantize(_DECIMAL_QUANTUM)
    if rounded != value:
        raise _BadValue(
            _('"{value}" has more than {places} decimal places; round it to {places}').format(
                value=_show(text), places=_DECIMAL_PLACES
            )
        )
    return rounded


def _one_integer(text: str) -> int:
    number = _number_text(text)
    value = Decimal(number) if number is not None else None
    if value is None or value != value.to_integral_value():
        raise _BadValue(
            _('"{value}" is not a whole number (expected e.g. 3)').format(value=_show(text))
        )
    if value.adjusted() > 17:  # keeps clear of int64's limit before converting
        raise _too_large(text)
    return int(value)


def _one_number(text: str) -> float:
    number = _number_text(text)
    if number is None:
        raise _not_a_number(text)
    value = float(number)
    if not math.isfinite(value):
        raise _too_large(text)
    return value


_DATE_TIME_RE = re.compile(
    r"""
    (?:
        (?P<y>[0-9]{4})[-/.](?P<m>[0-9]{1,2})[-/.](?P<d>[0-9]{1,2})
      | (?P<cy>[0-9]{4})\s*年\s*(?P<cm>[0-9]{1,2})\s*月\s*(?P<cd>[0-9]{1,2})\s*[日号號]?
      | (?P<ky>[0-9]{4})(?P<km>[0-9]{2})(?P<kd>[0-9]{2})
    )
    (?:
        (?:\s*T\s*|\s+|(?<=[日号號]))
        (?P<H>[0-9]{1,2})
        (?:
            :(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?
          | \s*[时時点點]\s*(?:(?P<cM>[0-9]{1,2})\s*分?\s*(?:(?P<cS>[0-9]{1,2})\s*秒)?)?
        )
    )?
    \s*(?P<zone>Z|UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?)?
    """,
    re.VERBOSE | re.IGNORECASE,
)
# What a date_format does not cover but must still be read: ISO 8601, which is how Excel's own
# date cells reach the parser.
_ISO_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
)


def _zone_of(text: str | None) -> fixed_timezone | None:
    if not text:
        return None
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    digits = text[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return fixed_timezone(-offset if text[0] == "-" else offset)


def _read_date_time(text: str, date_format: str | None) -> datetime:
    """A naive (local) or aware datetime from one value; raises ValueError when it is not one."""
    text = _normalized(text)
    if date_format:
        try:
            return datetime.strptime(text, date_format)
        except ValueError:
            if _ISO_RE.fullmatch(text) is None:
                raise
            return datetime.fromisoformat(text)
    match = _DATE_TIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    year, month, day = (
        (match["y"], match["m"], match["d"])
        if match["y"]
        else (match["cy"], match["cm"], match["cd"])
        if match["cy"]
        else (match["ky"], match["km"], match["kd"])
    )
    fraction = (match["f"] or "")[:6].ljust(6, "0")
    return datetime(
        int(year),
        int(month),
        int(day),
        int(match["H"] or 0),
        int(match["M"] or match["cM"] or 0),
        int(match["S"] or match["cS"] or 0),
        int(fraction),
        tzinfo=_zone_of(match["zone"]),
    )


def _not_a_date(text: str, column_type: ColumnType, date_format: str | None) -> _BadValue:
    if date_format:
        return _BadValue(
            _('"{value}" does not match the date format "{format}"').format(
                value=_show(text), format=date_format
            )
        )
    if column_type is ColumnType.DATE:
        return _BadValue(
            _('"{value}" is not a date (expected e.g. 2024-03-05)').format(value=_show(text))
        )
    return _BadValue(
        _('"{value}" is not a date (expected e.g. 2024-03-05 or 2024-03-05 14:30)').format(
            value=_show(text)
        )
    )


# --- Whole columns -------------------------------------------------------------------------------

_Problems = dict[int, str]  # position in the batch -> message
_STRING_TYPES = (pa.string(), pa.large_string())


def _blank_to_null(values: pa.Array) -> pa.Array:
    """Empty strings become nulls: an empty cell means "no value"."""
    blank = pc.equal(values, "")
    if not pc.any(blank).as_py():
        return values
    return pc.if_else(blank, pa.scalar(None, values.type), values)


def _trimmed(values: pa.Array) -> pa.Array:
    return _blank_to_null(pc.utf8_trim_whitespace(values))


def _positions(mask: pa.Array) -> np.ndarray:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_numpy()


def _attempt(fast: Callable[[pa.Array], pa.Array | None], values: pa.Array) -> pa.Array | None:
    try:
        return fast(values)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _in_python(
    values: pa.Array, one: Callable[[str], Any], arrow_type: pa.DataType
) -> tuple[pa.Array, _Problems]:
    """Parse each distinct value once in Python; nulls stay null."""
    encoded = values.dictionary_encode()
    results: list[Any] = []
    messages: list[str | None] = []
    for text in encoded.dictionary.to_pylist():
        try:
            results.append(one(text))
            messages.append(None)
        except _BadValue as error:
            results.append(None)
            messages.append(str(error))
    indices = encoded.indices
    typed = pa.array(results, arrow_type).take(indices)
    problems: _Problems = {}
    if any(message is not None for message in messages):
        bad = np.array([message is not None for message in messages] + [False])
        codes = pc.fill_null(indices, -1).to_numpy()  # -1 (null) picks the trailing False
        for position in np.flatnonzero(bad[codes]):
            problems[int(position)] = messages[codes[position]]  # type: ignore[assignment]
    return typed, problems


def _place(
    parts: Sequence[tuple[np.ndarray, pa.Array]], length: int, arrow_type: pa.DataType
) -> pa.Array:
    """One array of ``length`` from typed parts that each fill the given positions."""
    if not parts:
        return pa.nulls(length, arrow_type)
    order = np.full(length, -1, dtype=np.int64)
    start = 0
    for positions, _part in parts:
        order[positions] = np.arange(start, start + len(positions))
        start += len(positions)
    combined = pa.concat_arrays([part for _positions_, part in parts])
    return combined.take(pa.array(order, mask=order < 0))


@dataclass(frozen=True)
class _Converter:
    """Turns one column of raw text into its Arrow type."""

    column: Column
    date_format: str | None
    zone: ZoneInfo

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.column.type]

    def convert(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        kind = self.column.type
        if kind is ColumnType.TEXT:
            typed, problems = self._text(values)
        elif kind in (ColumnType.CHOICE, ColumnType.BOOLEAN):
            typed, problems = self._lookup(values)
        else:
            typed, problems = self._parsed(values)
            if self.column.minimum is not None:
                self._check_minimum(typed, values, problems)
        return typed, problems

    # Text: trimmed, and no longer than max_length.
    def _text(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        typed = _trimmed(values)
        problems: _Problems = {}
        limit = self.column.max_length
        if limit is not None:
            for position in _positions(pc.greater(pc.utf8_length(typed), limit)):
                text = typed[int(position)].as_py()
                problems[int(position)] = _(
                    '"{value}" is {length} characters long; at most {limit} are allowed'
                ).format(value=_show(text), length=len(text), limit=limit)
        return typed, problems

    # Choices and booleans: few distinct values, each looked up once.
    def _lookup(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        if self.column.type is ColumnType.BOOLEAN:
            table: dict[str, Any] = {word: True for word in _TRUE_WORDS}
            table.update({word: False for word in _FALSE_WORDS})
        else:
            table = {code.casefold(): code for code in self.column.choices}
            table.update({alias.casefold(): code for alias, code in self.column.choice_aliases})

        def one(text: str) -> Any:
            key = _normalized(text).casefold()
            if not key:
                return None
            if key not in table:
                raise _BadValue(self._not_allowed(text))
            return table[key]

        return _in_python(values, one, self.arrow_type)

    def _not_allowed(self, text: str) -> str:
        if self.column.type is ColumnType.BOOLEAN:
            return _(
                '"{value}" is not yes or no (use true/false, yes/no, y/n, 1/0 or 是/否)'
            ).format(value=_show(text))
        return _('"{value}" is not one of the allowed values: {allowed}').format(
            value=_show(text), allowed=", ".join(self.column.choices)
        )

    # Numbers and dates: Arrow first, Python for what Arrow refuses.
    def _parsed(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        arrow_type = self.arrow_type
        values = _blank_to_null(values)
        if values.null_count == len(values):
            return pa.nulls(len(values), arrow_type), {}
        shapes = self._shapes()
        if not shapes:
            return _in_python(values, self._one, arrow_type)
        # Arrow's casts are fast when they succeed but slow to fail value after value, so the
        # whole column is cast only when its first values have the right shape.
        sample = values.slice(0, 100).drop_null()
        for pattern, cast in shapes:
            if pc.all(pc.match_substring_regex(sample, pattern)).as_py():
                typed = _attempt(cast, values)
                if typed is not None:
                    return typed, {}
        return self._in_parts(_trimmed(values), shapes)

    def _in_parts(self, values: pa.Array, shapes: list[_Shape]) -> tuple[pa.Array, _Problems]:
        """Arrow for the values of each standard shape, Python for the others."""
        parts: list[tuple[np.ndarray, pa.Array]] = []
        positions = _positions(pc.is_valid(values))
        rest = values.drop_null()

        def take_shapes(candidates: pa.Array) -> None:
            nonlocal positions, rest
            for pattern, cast in shapes:
                fits = pc.fill_null(pc.match_substring_regex(candidates, pattern), False)
                if not pc.any(fits).as_py():
                    continue
                # None when a value slips the pattern (2024-02-30): Python then tells which.
                typed = _attempt(cast, candidates.filter(fits))
                if typed is not None:
                    fitting = fits.to_numpy(zero_copy_only=False)
                    parts.append((positions[fitting], typed))
                    positions = positions[~fitting]
                    candidates = candidates.filter(pc.invert(fits))
                    rest = rest.filter(pc.invert(fits))

        take_shapes(rest)
        if self.column.type in (ColumnType.DATE, ColumnType.DATETIME) and len(rest) >= 100:
            # Dates like 2024/3/5 9:05 (what Excel writes in Chinese locales), padded into ISO
            # form, are read by Arrow too.
            take_shapes(_iso_shaped(rest))
        problems: _Problems = {}
        if len(rest):
            typed, rest_problems = _in_python(rest, self._one, self.arrow_type)
            parts.append((positions, typed))
            problems = {int(positions[row]): message for row, message in rest_problems.items()}
        return _place(parts, len(values), self.arrow_type), problems

    def _shapes(self) -> list[_Shape]:
        """Standard forms of the column's values, each with the Arrow cast that reads it."""
        kind = self.column.type
        if kind is ColumnType.DATE:
            if self.date_format:
                return []
            return [
                (_DATE_PATTERN, lambda values: values.cast(pa.date32())),
                (_NAIVE_PATTERN, _date_of_timestamp),
            ]
        if kind is ColumnType.DATETIME:
            if self.date_format:
                return []
            return [
                (_NAIVE_PATTERN, self._naive_to_utc),
                (_ZONED_PATTERN, lambda values: values.cast(_TIMESTAMP_TYPE)),
            ]
        if kind is ColumnType.NUMBER:
            return [(_NUMBER_PATTERN, _finite_numbers)]
        pattern = _INTEGER_PATTERN if kind is ColumnType.INTEGER else _DECIMAL_PATTERN
        return [(pattern, lambda values: values.cast(self.arrow_type))]

    def _naive_to_utc(self, values: pa.Array) -> pa.Array:
        naive = values.cast(pa.timestamp("us"))
        if self.zone.key != "UTC":
            naive = pc.assume_timezone(
                naive, self.zone.key, ambiguous="earliest", nonexistent="earliest"
            )
        return naive.cast(_TIMESTAMP_TYPE)

    def _one(self, text: str) -> Any:
        kind = self.column.type
        if kind is ColumnType.DECIMAL:
            return _one_decimal(text)
        if kind is ColumnType.INTEGER:
            return _one_integer(text)
        if kind is ColumnType.NUMBER:
            return _one_number(text)
        try:
            moment = _read_date_time(text, self.date_format)
        except ValueError:
            raise _not_a_date(text, kind, self.date_format) from None
        if kind is ColumnType.DATE:
            return moment.date()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment.astimezone(UTC)

    def _check_minimum(self, typed: pa.Array, raw: pa.Array, problems: _Problems) -> None:
        minimum = self.column.minimum
        assert minimum is not None
        if self.column.type is ColumnType.DECIMAL:
            bound = pa.scalar(Decimal(str(minimum)), _DECIMAL_TYPE)
        else:
            bound = pa.scalar(minimum)
        for position in _positions(pc.less(typed, bound)):
            position = int(position)
            if position not in problems:
                problems[position] = _(
                    '"{value}" is less than {minimum}, the smallest value allowed'
                ).format(value=_show(raw[position].as_py().strip()), minimum=f"{minimum:g}")


def _iso_shaped(values: pa.Array) -> pa.Array:
    """Dates such as 2024/3/5 9:05, 2024.03.05 or 2024年3月5日 rewritten as 2024-03-05 09:05."""
    shaped = pc.replace_substring_regex(
        values,
        pattern=r"^([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})(?:日\s*|\s*T\s*|\s+)?",
        replacement=r"\1-\2-\3 ",
    )
    for _twice in range(2):  # a match takes the separator after a digit, hiding the next one
        shaped = pc.replace_substring_regex(
            shaped, pattern=r"([- :])([0-9])([^0-9]|$)", replacement=r"\10\2\3"
        )
    return pc.utf8_rtrim_whitespace(shaped)


def _finite_numbers(values: pa.Array) -> pa.Array:
    typed = values.cast(pa.float64())
    if pc.all(pc.is_finite(typed)).as_py() is False:
        # Arrow reads "nan" and "inf"; they are not measurements.
        raise pa.ArrowInvalid("not finite")
    return typed


def _date_of_timestamp(values: pa.Array) -> pa.Array:
    return pc.cast(values.cast(pa.timestamp("us")), pa.date32(), safe=False)


_Shape = tuple[str, Callable[[pa.Array], pa.Array]]
_TRUE_WORDS = ("true", "yes", "y", "1", "t", "on", "是", "真", "对", "對")
_FALSE_WORDS = ("false", "no", "n", "0", "f", "off", "否", "假", "错", "錯")
# Values of these shapes are read by Arrow's casts (bar calendar slips such as 2024-02-30).
_INTEGER_PATTERN = r"^-?[0-9]{1,18}$"
_DECIMAL_PATTERN = r"^-?[0-9]{1,14}(\.[0-9]{0,4}0*)?$"
_NUMBER_PATTERN = r"^-?[0-9]{1,300}(\.[0-9]*)?$"
_DAY = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
_DATE_PATTERN = f"^{_DAY}$"
_NAIVE_PATTERN = f"^{_DAY}([ T]{_TIME})?$"
_ZONED_PATTERN = f"^{_DAY}[ T]{_TIME}(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$"


# --- Tables --------------------------------------------------------------------------------------


def _as_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type == pa.string():
        return array
    if array.type == pa.null():
        return pa.nulls(len(array), pa.string())
    return array.cast(pa.string())


class TableParser:
    """Parses successive tables of raw text that share one header (the batches of one file).

    ``file_columns`` are the names in the file's header row, in order; every table given to
    :meth:`parse` has exactly these columns, as text. Header problems raise
    :class:`ImportFileError` here, before any row; ``warnings`` lists the harmless ones.
    """

    def __init__(
        self,
        kind: Kind | str,
        file_columns: Sequence[str],
        *,
        file_name: str = "<table>",
        mapping: Mapping[str, str | None] | None = None,
        date_format: str | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.kind = resolve_kind(kind)
        self.header = resolve_header(self.kind, file_columns, file_name=file_name, mapping=mapping)
        zone = resolve_zone(timezone)
        self._converters = [
            (self.header.targets.index(name), _Converter(self.kind.column(name), date_format, zone))
            for name in self.header.columns
        ]
        self._attributes = [
            (position, target[len(ATTRIBUTE_PREFIX) :])
            for position, target in enumerate(self.header.targets)
            if target is not None and target.startswith(ATTRIBUTE_PREFIX)
        ]
        required = [
            position for position, converter in self._converters if converter.column.required
        ]
        # Blank rows are found by looking at required columns first: any value there ends the
        # search early, and every row has one unless it is blank or in error.
        self._blank_check_order = required + [
            position for position in range(len(file_columns)) if position not in required
        ]

    @property
    def file_name(self) -> str:
        return self.header.file_name

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns found, in the kind's order."""
        return self.header.columns

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.header.warnings

    def parse(
        self,
        table: pa.Table,
        row_numbers: Sequence[int] | np.ndarray | None = None,
        *,
        first_row: int = 2,
    ) -> ParsedBatch:
        """Parse one table; rows are numbered ``row_numbers``, else from ``first_row`` on.

        Rows whose every cell is empty are skipped, as a spreadsheet user expects.
        """
        header = self.header
        if table.num_columns != len(header.file_columns):
            raise ValueError(
                f"expected {len(header.file_columns)} columns, got {table.num_columns}"
            )
        raw = [_as_text(column) for column in table.columns]
        if row_numbers is None:
            numbers = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
        else:
            numbers = np.asarray(row_numbers, dtype=np.int64)
        blank = self._blank_rows(raw)
        if blank is not None:
            keep = pc.invert(blank)
            raw = [column.filter(keep) for column in raw]
            numbers = numbers[keep.to_numpy(zero_copy_only=False)]
        length = len(numbers)

        typed: dict[str, pa.Array] = {}
        problems: dict[int, list[tuple[int, str]]] = {}
        for position, converter in self._converters:
            column = converter.column
            values, column_problems = converter.convert(raw[position])
            if column.required and values.null_count:
                for row in _positions(pc.is_null(values)):
                    column_problems.setdefault(
                        int(row), _("a value is required, but the cell is empty")
                    )
            for row, message in column_problems.items():
                problems.setdefault(row, []).append((position, message))
            typed[column.name] = values
        if self._attributes:
            typed[ATTRIBUTES] = self._attribute_column(raw)
        typed[ROW_NUMBER] = pa.array(numbers, pa.int64())

        valid = pa.table(typed)
        rejected = pa.Table.from_arrays(
            [*raw, pa.array(numbers, pa.int64())], names=[*header.file_columns, ROW_NUMBER]
        )
        if not problems:
            return ParsedBatch(valid, rejected.slice(0, 0), [])
        bad = np.zeros(length, dtype=bool)
        bad[list(problems)] = True
        errors = [
            self._error(raw, int(numbers[row]), row, position, message)
            for row in sorted(problems)
            for position, message in sorted(problems[row], key=lambda item: item[0])
        ]
        return ParsedBatch(valid.filter(pa.array(~bad)), rejected.filter(pa.array(bad)), errors)

    def _blank_rows(self, raw: list[pa.Array]) -> pa.Array | None:
        blank: pa.Array | None = None
        for position in self._blank_check_order:
            empty = pc.fill_null(pc.equal(raw[position], ""), True)
            blank = empty if blank is None else pc.and_(blank, empty)
            if not pc.any(blank).as_py():
                return None
        return blank

    def _attribute_column(self, raw: list[pa.Array]) -> pa.Array:
        names = [name for _position, name in self._attributes]
        columns = [
            pc.utf8_trim_whitespace(raw[position]).to_pylist() for position, _ in self._attributes
        ]
        texts: list[str | None] = []
        for values in zip(*columns, strict=True):
            found = {name: value for name, value in zip(names, values, strict=True) if value}
            texts.append(json.dumps(found, ensure_ascii=False) if found else None)
        return pa.array(texts, pa.string())

    def _error(
        self, raw: list[pa.Array], row: int, position: int, column: int, message: str
    ) -> RowError:
        value = raw[column][position].as_py()
        name = self.header.file_columns[column]
        target = self.header.targets[column] or ""
        return RowError(
            self.file_name,
            row,
            name,
            value if value != "" else None,
            message,
            canonical=target if target != name else "",
        )


def parse_table(
    kind: Kind | str,
    table: pa.Table,
    *,
    file_name: str = "<table>",
    first_row: int = 2,
    mapping: Mapping[str, str | None] | None = None,
    date_format: str | None = None,
    timezone: str = "UTC",
) -> ParsedBatch:
    """Parse a table of raw text (no file needed), its rows numbered from ``first_row``.

    The columns are named as in the source (mapped through ``mapping``, else matched to canonical
    names); values that are not text are cast to text first. Raises :class:`ImportFileError` for
    header problems; use :class:`TableParser` to see the warnings or to parse several tables.
    """
    parser = TableParser(
        kind,
        table.column_names,
        file_name=file_name,
        mapping=mapping,
        date_format=date_format,
        timezone=timezone,
    )
    return parser.parse(table, first_row=first_row)
