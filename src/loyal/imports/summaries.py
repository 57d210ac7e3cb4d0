"""What merging orders needs to know about a whole file, gathered batch by batch while it is read.

A file of a million order lines names a few hundred products, a dozen categories and some
thousands of customers. Summing each batch with Arrow as it is staged, and the summaries of the
batches into one, gives the merge these small tables without grouping every staged row again in
SQL (on SQLite, a sort of the whole staging table for each of them).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from loyal.imports.staging import StageColumn, StagingTable, execute

PRODUCTS = "loyal_stage_order_products"
CATEGORIES = "loyal_stage_order_categories"
CUSTOMERS = "loyal_stage_order_customers"

_PRODUCT_COLUMNS = (
    StageColumn("sku", "text"),
    StageColumn("name", "text"),
    StageColumn("category", "text"),
    StageColumn("price", "decimal"),
    StageColumn("unit_cost", "decimal"),
)
_CATEGORY_COLUMNS = (StageColumn("name", "text"),)
_CUSTOMER_COLUMNS = (StageColumn("customer_id", "text"), StageColumn("joined", "datetime"))


class OrderSummaries:
    """The products, categories and customers named by staged order lines.

    Products: per SKU, the greatest name, category, price and cost of its lines. Categories:
    every category named. Customers: per customer id, the time of the first order (when a
    customer the import creates joined). ``stale`` marks summaries that no longer match the
    staged rows (some were discarded); they are then taken from the staging table instead.
    """

    def __init__(self) -> None:
        self.products: pa.Table | None = None
        self.categories: pa.Table | None = None
        self.customers: pa.Table | None = None
        self.stale = False
        self.tables: list[StagingTable] = []
        # Batches are folded in a thread of their own while the loader stages them (Arrow lets
        # go of the interpreter lock), one at a time and in order; at most one waits.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loyal-summaries")
        self._pending: Future[None] | None = None

    def add(self, lines: pa.Table) -> None:
        """Fold a batch of staged lines (every staging column) into the summaries, in a thread.

        An error in an earlier batch's fold is raised here, or by :meth:`stage`.
        """
        self.wait()
        self._pending = self._worker.submit(self._fold, lines)

    def wait(self) -> None:
        """Until every batch added is folded in."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _fold(self, lines: pa.Table) -> None:
        self.products = _fold_products(self.products, _products_of(lines))
        categories = pc.unique(lines.column("category").drop_null())
        self.categories = _fold(self.categories, pa.table({"name": categories}), "name", [])
        customers = lines.group_by("customer_id").aggregate([("ordered_at", "min")])
        customers = customers.rename_columns(["customer_id", "joined"]).select(
            ["customer_id", "joined"]
        )
        self.customers = _fold(self.customers, customers, "customer_id", [("joined", "min")])

    def stage(self, lines: str) -> None:
        """Write the summaries to their staging tables (from ``lines`` if they are stale)."""
        self.wait()
        products = StagingTable(PRODUCTS, _PRODUCT_COLUMNS, [("sku",)])
        categories = StagingTable(CATEGORIES, _CATEGORY_COLUMNS, [("name",)])
        # Not indexed: the merge reads the customers through, looking each up in the records
        # (an index on a hundred thousand ids took 0.27 s on PostgreSQL for nothing).
        customers = StagingTable(CUSTOMERS, _CUSTOMER_COLUMNS)
        self.tables = [products, categories, customers]
        if self.stale or self.products is None:
            execute(
                "INSERT INTO {t} (sku, name, category, price, unit_cost) SELECT sku,"
                " MAX(product_name), MAX(category), MAX(unit_price), MAX(unit_cost) FROM {s}"
                " WHERE sku IS NOT NULL GROUP BY sku".format(t=PRODUCTS, s=lines)
            )
            execute(
                "INSERT INTO {t} (name) SELECT DISTINCT category FROM {s}"
                " WHERE category IS NOT NULL".format(t=CATEGORIES, s=lines)
            )
            execute(
                "INSERT INTO {t} (customer_id, joined) SELECT customer_id, MIN(ordered_at) FROM {s}"
                " WHERE customer_id IS NOT NULL GROUP BY customer_id".format(t=CUSTOMERS, s=lines)
            )
        else:
            products.append(self.products.filter(pc.is_valid(self.products.column("sku"))))
            categories.append(self.categories)
            customers.append(
                self.customers.filter(pc.is_valid(self.customers.column("customer_id")))
            )
        for table in self.tables:
            table.seal()

    def drop(self) -> None:
        self._worker.shutdown(cancel_futures=True)
        for table in self.tables:
            table.drop()


def _products_of(lines: pa.Table) -> pa.Table:
    summary = lines.group_by("sku").aggregate(
        [(column, "max") for column in ("product_name", "category", "unit_price", "unit_cost")]
    )
    return pa.table(
        {
            "sku": summary.column("sku"),
            "name": summary.column("product_name_max"),
            "category": summary.column("category_max"),
            "price": summary.column("unit_price_max"),
            "unit_cost": summary.column("unit_cost_max"),
        }
    )


def _fold_products(summary: pa.Table | None, batch: pa.Table) -> pa.Table:
    return _fold(
        summary, batch, "sku", [(c, "max") for c in ("name", "category", "price", "unit_cost")]
    )


def _fold(
    summary: pa.Table | None, batch: pa.Table, key: str, aggregations: list[tuple[str, str]]
) -> pa.Table:
    """``batch`` folded into ``summary``: one row per ``key``, the others aggregated again."""
    if summary is None:
        return batch
    both = pa.concat_tables([summary, batch])
    folded = both.group_by(key).aggregate(aggregations)
    # Arrow names an aggregate after its column and function ("joined_min"): back to the column.
    return pa.table(
        {
            name: folded.column(
                name if name == key else "{}_{}".format(name, dict(aggregations)[name])
            )
            for name in summary.column_names
        }
    )
