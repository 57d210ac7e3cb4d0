"""Import speed and memory: `loyal import orders` on a large CSV, on SQLite and on PostgreSQL.

Generates (seeded) a CSV of order lines, then runs the real command in a child process against a
fresh SQLite file and a fresh PostgreSQL database, and reports rows per second and the child's
peak memory (ru_maxrss). A second run of the same file is timed too (nothing changes: idempotent).

    .venv/bin/python benchmarks/import_orders.py              # 1,000,000 order lines
    .venv/bin/python benchmarks/import_orders.py --lines 50000

Aims (issue 2): at least 50,000 rows/s on both databases, peak memory under 1 GiB.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
LOYAL = [sys.executable, "-m", "loyal"]
POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def make_csv(path: Path, lines: int, seed: int = 1) -> None:
    """Order lines: ~2.5 lines an order, 100,000 customers, 500 products."""
    import numpy as np  # only in the child that generates the file (see ``main``)

    rng = np.random.default_rng(seed)
    order_sizes = rng.integers(1, 5, size=lines)  # more than needed; cut below
    order_of_line = np.repeat(np.arange(order_sizes.size), order_sizes)[:lines]
    orders = int(order_of_line[-1]) + 1
    customer_of_order = rng.integers(0, max(lines // 10, 1), size=orders)
    seconds_of_order = rng.integers(0, 2 * 365 * 86400, size=orders)
    start = np.datetime64("2024-01-01T00:00:00")
    sku = rng.integers(0, 500, size=lines)
    quantity = rng.integers(1, 4, size=lines)
    price_cents = (sku * 37 % 20000) + 500
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "order_id",
                "customer_id",
                "ordered_at",
                "status",
                "sku",
                "category",
                "quantity",
                "unit_price",
                "unit_cost",
            ]
        )
        for begin in range(0, lines, 100_000):
            end = min(begin + 100_000, lines)
            o = order_of_line[begin:end]
            when = (start + seconds_of_order[o].astype("timedelta64[s]")).astype(str)
            for i in range(end - begin):
                line = begin + i
                writer.writerow(
                    [
                        "O{:08d}".format(o[i]),
                        "C{:07d}".format(customer_of_order[o[i]]),
                        when[i].replace("T", " "),
                        "paid",
                        "SKU{:04d}".format(sku[line]),
                        "cat{}".format(sku[line] % 12),
                        quantity[line],
                        "{:.2f}".format(price_cents[line] / 100),
                        "{:.2f}".format(price_cents[line] * 0.6 / 100),
                    ]
                )


def run_import(csv_path: Path, env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak memory (bytes) of one `loyal import orders` child process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*LOYAL, "import", "orders", str(csv_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read() + process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("import failed:\n" + output)
    print("   ", output.strip().splitlines()[-1] if output.strip() else "")
    return seconds, usage.ru_maxrss * 1024


def prepare(env: dict[str, str]) -> None:
    subprocess.run([*LOYAL, "migrate", "--noinput", "-v", "0"], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        make_csv(args.generate, args.lines)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    csv_path = WORK / "orders-{}.csv".format(args.lines)
    if not csv_path.exists():
        print("generating {} ...".format(csv_path))
        # In a child: a parent that held the data would pass its peak memory on to the imports
        # it starts (Linux keeps ru_maxrss across exec, and a vfork child execs from the
        # parent's memory). Written under another name first, so a stopped run leaves no half file.
        partial = csv_path.with_name(csv_path.name + ".partial")
        generate = [
            sys.executable,
            __file__,
            "--lines",
            str(args.lines),
            "--generate",
            str(partial),
        ]
        subprocess.run(generate, check=True)
        partial.replace(csv_path)
    print(
        "file: {} ({:.0f} MB, {} order lines)".format(
            csv_path.name, csv_path.stat().st_size / 1e6, args.lines
        )
    )

    results = []
    with tempfile.TemporaryDirectory() as data_dir:
        base = {**os.environ, "LOYAL_DATA_DIR": data_dir, "PYTHONPATH": str(ROOT / "src")}
        base.pop("LOYAL_DATABASE_URL", None)
        databases = {"SQLite": base}
        database_name = "loyal_bench_import"
        subprocess.run(
            [
                "psql",
                POSTGRES_ADMIN_URL,
                "-qc",
                "DROP DATABASE IF EXISTS {} WITH (FORCE)".format(database_name),
            ],
            check=True,
        )
        subprocess.run(
            ["psql", POSTGRES_ADMIN_URL, "-qc", "CREATE DATABASE {}".format(database_name)],
            check=True,
        )
        databases["PostgreSQL"] = {
            **base,
            "LOYAL_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/{}".format(database_name),
        }
        for name, env in databases.items():
            prepare(env)
            if name == "PostgreSQL":
                # The write-ahead log of creating the database and its tables is flushed now, so
                # the checkpoint it calls for is not billed to the timed import.
                subprocess.run(["psql", POSTGRES_ADMIN_URL, "-qc", "CHECKPOINT"], check=True)
            print("{}: first import".format(name))
            first, first_memory = run_import(csv_path, env)
            print("{}: same file again".format(name))
            second, second_memory = run_import(csv_path, env)
            results.append((name, first, second, max(first_memory, second_memory)))
        subprocess.run(
            [
                "psql",
                POSTGRES_ADMIN_URL,
                "-qc",
                "DROP DATABASE IF EXISTS {} WITH (FORCE)".format(database_name),
            ],
            check=True,
        )

    print()
    print(
        "{:<11} {:>10} {:>12} {:>12} {:>14} {:>12}".format(
            "database", "seconds", "rows/s", "re-import s", "peak memory", "vs aim 50k/s"
        )
    )
    for name, first, second, memory in results:
        rate = args.lines / first
        print(
            "{:<11} {:>10.1f} {:>12,.0f} {:>12.1f} {:>11.0f} MB {:>11.2f}x".format(
                name, first, rate, second, memory / 2**20, rate / 50_000
            )
        )


if __name__ == "__main__":
    main()
