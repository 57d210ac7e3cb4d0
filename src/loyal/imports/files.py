"""The file layer of the import pipeline, in one place for callers.

Reading and checking headers lives in :mod:`loyal.imports.reading`, turning raw text into typed
columns in :mod:`loyal.imports.parsing`; this module gathers their public names::

    with open_import("orders.csv", "orders", mapping={"订单号": "order_id"}) as file:
        for batch in file.batches():
            load(batch.valid)
            report(batch.errors)
"""

from __future__ import annotations

from loyal.imports.parsing import (
    ImportFileError,
    ParsedBatch,
    RowError,
    TableParser,
    parse_table,
    resolve_header,
)
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
