"""The file layer of the import pipeline, in one place for callers.

Opening files lives in :mod:`loyal.imports.reading` (the CSV and Excel readers themselves in
:mod:`loyal.imports.file_sources`), matching headers to canonical columns in
:mod:`loyal.imports.headers`, and turning raw text into typed columns in
:mod:`loyal.imports.parsing` (single values and columns in :mod:`loyal.imports.values`); this
module gathers their public names::

    with open_import("orders.csv", "orders", mapping={"订单号": "order_id"}) as file:
        for batch in file.batches():
            load(batch.valid)
            report(batch.errors)
"""

from __future__ import annotations

from loyal.imports.headers import ImportFileError, resolve_header
from loyal.imports.parsing import ParsedBatch, RowError, TableParser, parse_table
from loyal.imports.reading import ImportFile, load_mapping, open_import

__all__ = [
    "ImportFile",
    "ImportFileError",
    "ParsedBatch",
    "RowError",
    "TableParser",
    "load_mapping",
    "open_import",
    "parse_table",
    "resolve_header",
]
