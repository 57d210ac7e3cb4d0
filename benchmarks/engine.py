"""The retention analytics at scale: ``run_all`` on DuckDB from Parquet, measured in one run.

    .venv/bin/python benchmarks/engine.py                        # 1,000,000 customers
    .venv/bin/python benchmarks/engine.py --customers 50000      # smoke size
    .venv/bin/python benchmarks/engine.py --skip-lifetimes       # no pandas summary peer
    .venv/bin/python benchmarks/engine.py --only loyal_summary,lifetimes_summary --repeat 5
    .venv/bin/python benchmarks/engine.py --repeat 5             # median of 5 runs of each job

The data set (seeded NumPy, written once as Parquet under ``benchmarks/.work/engine-v5-<n>/`` and
reused) has 1,000,000 customers: 70 % buyers with about 11 orders each in the two years
(~8,000,000 orders), 10 % subscribers (1-3 subscriptions), 20 % prospects, ~5 behaviour events
and one service contact per customer on average, over 2023-2024; ``as_of`` is 2025-01-01.
Orders and events are stored in time order (not grouped by customer), as a database holds them.

Each job runs in its own child process on DuckDB limited to ``--threads`` (2) threads; the parent
reads the child's peak resident memory (``ru_maxrss`` from ``wait4``). Jobs:

- ``run_all``: every retention analysis (``loyal.engine.run.run_all``, no predictive models), the
  Parquet files read in place; per-step times are printed;
- ``loyal_summary``: ``loyal.engine.summary.summarise`` (``customer_summary`` with daily
  periods, aggregated in NumPy) of the paid orders, from reading the Parquet file to Arrow;
- ``loyal_summary_in_memory``: the same with the paid orders already in a DuckDB table (loading
  them is not timed, and counts in the peak memory);
- ``lifetimes_summary``: lifetimes' ``summary_data_from_transaction_data`` on the same orders,
  and apart from it the time to read them from the file into pandas.

The summary jobs take turns (``--repeat`` times), and the ratios to lifetimes compare like with
like: from the file (both read it) and in memory (the summaries alone); the third, lifetimes in
memory against Loyal from the file, is the comparison the sessions before reported.

Aims: ``run_all`` under 15 s on 2 cores and under 2 GiB peak memory; the summary 20x faster
than lifetimes'. On a shared virtual machine one run's time can vary by a quarter from the
next: ``--repeat`` reports the median.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
START = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
AS_OF = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SEED = 20240601
# Row groups as `loyal analyze` writes its snapshot (loyal.insights.sources.ROW_GROUP_ROWS):
# DuckDB scans a file on one thread per row group.
ROW_GROUP_ROWS = 131_072


# --- data -------------------------------------------------------------------------------------


def generate(customers: int, out: Path) -> None:
    """Write the seeded data set as one Parquet file per source table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from loyal.engine.sources import SCHEMAS

    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    span = (AS_OF - START).total_seconds()
    start_us = int(START.timestamp() * 1e6)

    def ts(seconds: np.ndarray) -> pa.Array:
        return pa.array((start_us + seconds * 1e6).astype("int64"), pa.timestamp("us", tz="UTC"))

    ids = np.arange(1, customers + 1, dtype=np.int64)
    joined = rng.uniform(0, span * 0.9, customers)
    kind = rng.choice(3, size=customers, p=[0.7, 0.1, 0.2])  # buyer, subscriber, prospect
    channels = np.array(["web", "store", "referral", "ads"], dtype=object)
    cities = np.array(["上海", "北京", "广州", "深圳", "杭州"], dtype=object)
    customers_table = pa.table(
        {
            "customer_id": ids,
            "external_id": pa.array([f"C{i}" for i in ids]),
            "name": pa.nulls(customers, pa.string()),
            "stage": pa.nulls(customers, pa.string()),
            "joined_at": ts(joined),
            "acquisition_source": pa.nulls(customers, pa.string()),
            "acquisition_channel": pa.array(channels[rng.integers(0, 4, customers)]),
            "city": pa.array(cities[rng.integers(0, 5, customers)]),
            "birthday": pa.nulls(customers, pa.date32()),
            "owner_id": pa.nulls(customers, pa.int64()),
        },
        schema=SCHEMAS["customers"],
    )
    pq.write_table(customers_table, out / "customers.parquet", row_group_size=ROW_GROUP_ROWS)

    # Orders: each buyer buys at a personal rate for a personal lifetime, from joining on.
    buyers = np.flatnonzero(kind == 0)
    counts = rng.negative_binomial(2, 2 / 21.5, buyers.size) + 1  # mean 20.5, ~60 % in span
    owner = np.repeat(buyers, counts)
    mean_gap = np.repeat(rng.gamma(2.0, 20.0, buyers.size) * 86_400, counts)
    gaps = rng.exponential(1.0, owner.size) * mean_gap
    first = np.r_[0, np.cumsum(counts)[:-1]]
    csum = np.cumsum(gaps)
    at = np.repeat(joined[buyers], counts) + csum - np.repeat(csum[first] - gaps[first], counts)
    keep = at < span
    # Stored in time order, numbered in that order, as a shop's database holds its orders (and
    # as Loyal's snapshot reads them): not grouped by customer, which would spare every
    # per-customer grouping some work that real data never spares it.
    by_time = np.argsort(at[keep], kind="stable")
    owner, at = owner[keep][by_time], at[keep][by_time]
    n = owner.size
    revenue = np.round(rng.gamma(2.0, 60.0, n), 2)
    status = np.where(
        rng.random(n) < 0.95, "paid", np.where(rng.random(n) < 0.5, "refunded", "cancelled")
    )
    orders = pa.table(
        {
            "order_id": np.arange(1, n + 1, dtype=np.int64),
            "customer_id": ids[owner],
            "ordered_at": ts(at),
            "status": pa.array(status.astype(object)),
            "channel": pa.array(channels[rng.integers(0, 2, n)]),
            "revenue": revenue,
            "cost": np.round(revenue * rng.uniform(0.4, 0.8, n), 2),
        },
        schema=SCHEMAS["orders"],
    )
    pq.write_table(orders, out / "orders.parquet", row_group_size=ROW_GROUP_ROWS)
    pq.write_table(SCHEMAS["order_lines"].empty_table(), out / "order_lines.parquet")

    # Subscriptions: 1-3 consecutive ones with gaps of 0-60 days; the last may still run.
    subs = np.flatnonzero(kind == 1)
    k = rng.integers(1, 4, subs.size)
    owner = np.repeat(subs, k)
    length = rng.exponential(240, owner.size) * 86_400
    pause = rng.uniform(0, 60, owner.size) * 86_400
    sfirst = np.r_[0, np.cumsum(k)[:-1]]
    spans = length + pause
    before = np.cumsum(spans) - spans  # everything before each subscription, all customers
    began = np.repeat(joined[subs], k) + before - np.repeat(before[sfirst], k)
    ended = began + length
    keep = began < span
    owner, began, ended = owner[keep], began[keep], ended[keep]
    m = owner.size
    monthly = rng.choice([9.0, 19.0, 49.0, 99.0], m)
    ended_arr = ts(ended)
    ended_arr = pc.if_else(pa.array(ended < span), ended_arr, pa.nulls(m, ended_arr.type))
    subscriptions = pa.table(
        {
            "subscription_id": np.arange(1, m + 1, dtype=np.int64),
            "customer_id": ids[owner],
            "plan": pa.array(np.char.add("plan", monthly.astype(int).astype(str)).astype(object)),
            "amount": monthly,
            "period": pa.array(np.full(m, "month", dtype=object)),
            "monthly_amount": monthly,
            "started_at": ts(began),
            "ended_at": ended_arr,
            "cancellation_reason": pa.nulls(m, pa.string()),
        },
        schema=SCHEMAS["subscriptions"],
    )
    pq.write_table(subscriptions, out / "subscriptions.parquet", row_group_size=ROW_GROUP_ROWS)

    # Events: ~5 per customer, in sessions of a visitor, after joining.
    e = customers * 5
    owner = rng.integers(0, customers, e)
    at = np.minimum(joined[owner] + rng.exponential(120, e) * 86_400, span - 1)
    by_time = np.argsort(at, kind="stable")
    owner, at = owner[by_time], at[by_time]
    session = owner * 100 + rng.integers(0, 20, e)
    events = pa.table(
        {
            "customer_id": ids[owner],
            "occurred_at": ts(at),
            "session_id": pa.array(session.astype(str).astype(object)),
            "event_type": pa.array(np.where(rng.random(e) < 0.7, "view", "click").astype(object)),
            "page": pa.nulls(e, pa.string()),
            "dwell_seconds": np.round(rng.exponential(40, e), 1),
        },
        schema=SCHEMAS["events"],
    )
    pq.write_table(events, out / "events.parquet", row_group_size=ROW_GROUP_ROWS)

    kinds = np.array(
        ["call", "email", "chat", "visit", "note", "complaint", "sms", "wechat"], dtype=object
    )
    i = customers
    owner = rng.integers(0, customers, i)
    interactions = pa.table(
        {
            "interaction_id": np.arange(1, i + 1, dtype=np.int64),
            "customer_id": ids[owner],
            "occurred_at": ts(
                np.minimum(joined[owner] + rng.exponential(200, i) * 86_400, span - 1)
            ),
            "kind": pa.array(kinds[rng.integers(0, kinds.size, i)]),
            "direction": pa.array(np.full(i, "outbound", dtype=object)),
            "outcome": pa.array(
                np.where(rng.random(i) < 0.05, "compensated", "resolved").astype(object)
            ),
        },
        schema=SCHEMAS["interactions"],
    )
    pq.write_table(interactions, out / "interactions.parquet", row_group_size=ROW_GROUP_ROWS)
    (out / "done").write_text(json.dumps({"orders": n, "subscriptions": m, "events": e}))


# --- jobs (each in a child process) -----------------------------------------------------------


def _sources(data: Path, threads: int) -> Any:
    from loyal.engine.execution import duckdb_backend
    from loyal.engine.sources import SCHEMAS, Sources

    con = duckdb_backend(threads=threads)
    tables = {
        name: con.read_parquet(str(data / f"{name}.parquet"), table_name=f"loyal_{name}")
        for name in SCHEMAS
    }
    return Sources(**tables)


def job_run_all(data: Path, threads: int) -> dict[str, Any]:
    # Imports are not timed, as in the other jobs: ibis.duckdb imports its backend on first use.
    import ibis.backends.duckdb  # noqa: F401

    from loyal.engine.run import run_all

    started = time.perf_counter()
    sources = _sources(data, threads)
    marks: list[tuple[str, float]] = []
    result = run_all(
        sources, AS_OF, progress=lambda name, i, n: marks.append((name, time.perf_counter()))
    )
    end = time.perf_counter()
    steps = {
        name: round(((marks[i + 1][1] if i + 1 < len(marks) else end) - at), 3)
        for i, (name, at) in enumerate(marks)
    }
    return {
        "seconds": round(end - started, 3),
        "steps": steps,
        "customers": result.customers.num_rows,
        "churn_window_days": result.settings.churn_window_days,
        "kpis": {
            k: v
            for k, v in result.kpis.items()
            if k
            in (
                "customers",
                "churn_rate_absolute",
                "churn_rate_relative",
                "repeat_purchase_rate",
                "dau_mau",
            )
        },
    }


def _paid_orders(data: Path) -> Any:
    """The paid orders' customer, time and amount as an Arrow table (the peers' input)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    orders = pq.read_table(
        data / "orders.parquet", columns=["customer_id", "ordered_at", "status", "revenue"]
    )
    return orders.filter(pc.equal(orders["status"], "paid")).drop(["status"])


def job_loyal_summary(data: Path, threads: int) -> dict[str, Any]:
    # Imports are not timed (nor are lifetimes'): ibis.duckdb imports its backend on first use.
    import ibis.backends.duckdb  # noqa: F401

    from loyal.engine.execution import duckdb_backend
    from loyal.engine.summary import summarise

    started = time.perf_counter()
    # Only the orders: registering the other tables reads their Parquet footers for nothing.
    orders = duckdb_backend(threads=threads).read_parquet(str(data / "orders.parquet"))
    paid = orders.filter(orders.status == "paid")
    table = summarise(paid, AS_OF, period="D")
    return {"seconds": round(time.perf_counter() - started, 3), "rows": table.num_rows}


def job_loyal_summary_in_memory(data: Path, threads: int) -> dict[str, Any]:
    # The paid orders already in a DuckDB table (not timed), as lifetimes gets them in a
    # DataFrame: the two summaries alone.
    import ibis.backends.duckdb  # noqa: F401

    from loyal.engine.execution import duckdb_backend
    from loyal.engine.summary import summarise

    paid = duckdb_backend(threads=threads).create_table("paid_orders", _paid_orders(data))
    started = time.perf_counter()
    table = summarise(paid, AS_OF, period="D")
    return {"seconds": round(time.perf_counter() - started, 3), "rows": table.num_rows}


def job_lifetimes_summary(data: Path, threads: int) -> dict[str, Any]:
    # Imported before the clock, as in the other jobs (``_paid_orders`` imports them).
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from lifetimes.utils import summary_data_from_transaction_data

    # The read is timed apart: from the file, lifetimes' user reads the orders into pandas.
    started = time.perf_counter()
    frame = _paid_orders(data).to_pandas()
    frame["ordered_at"] = frame["ordered_at"].dt.tz_localize(None)
    read = time.perf_counter()
    summary = summary_data_from_transaction_data(
        frame,
        "customer_id",
        "ordered_at",
        monetary_value_col="revenue",
        observation_period_end=AS_OF.replace(tzinfo=None) - dt.timedelta(microseconds=1),
        freq="D",
    )
    return {
        "seconds": round(time.perf_counter() - read, 3),
        "read_seconds": round(read - started, 3),
        "rows": len(summary),
    }


def job_machine(data: Path, threads: int) -> dict[str, Any]:
    """A fixed workload (a DuckDB hash aggregation on ``threads`` threads, a NumPy sort), timed
    before and after the jobs: on a shared virtual machine the same code's times drift by half
    from one hour to the next, and this tells a slow hour from a slower change."""
    import duckdb
    import numpy as np

    con = duckdb.connect(config={"threads": threads})
    started = time.perf_counter()
    con.execute("SELECT count(DISTINCT hash(i) % 2500000) FROM range(10000000) t(i)").fetchall()
    np.sort(np.random.default_rng(0).integers(0, 1 << 30, 10_000_000, dtype=np.int32))
    return {"seconds": round(time.perf_counter() - started, 3)}


JOBS = {
    "run_all": job_run_all,
    "loyal_summary": job_loyal_summary,
    "loyal_summary_in_memory": job_loyal_summary_in_memory,
    "lifetimes_summary": job_lifetimes_summary,
    "machine": job_machine,
}


def run_child(job: str, data: Path, threads: int) -> dict[str, Any]:
    """Run ``job`` in a child process; add its wall time and peak memory (MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--job", job, "--data", str(data), "--threads", str(threads)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"job {job} failed with status {status}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["wall"] = round(time.perf_counter() - started, 3)
    result["peak_mib"] = round(usage.ru_maxrss / 1024, 1)  # Linux reports KiB
    return result


def run_interleaved(
    jobs: list[str], data: Path, threads: int, repeat: int
) -> dict[str, list[dict[str, Any]]]:
    """Run each job ``repeat`` times, each run in a fresh child, the jobs taking turns (so a
    slower minute of a shared machine falls on all of them); return every job's runs."""
    runs: dict[str, list[dict[str, Any]]] = {job: [] for job in jobs}
    for _ in range(repeat):
        for job in jobs:
            runs[job].append(run_child(job, data, threads))
    return runs


def _median_run(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    """The run with the median of one figure (the upper one of an even number of runs)."""
    return sorted(runs, key=lambda run: run[key])[len(runs) // 2]


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return _median_run(runs, key)[key]


def _spread(runs: list[dict[str, Any]], key: str = "seconds") -> str:
    if len(runs) == 1:
        return ""
    values = sorted(run[key] for run in runs)
    return f" (median of {len(runs)} runs: {', '.join(f'{t:.2f}' for t in values)})"


def _peak(runs: list[dict[str, Any]]) -> float:
    return max(run["peak_mib"] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each job this many times (fresh processes) and report the median run",
    )
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=sorted(JOBS),
        help="comma-separated jobs to run (default: all of {})".format(", ".join(sorted(JOBS))),
    )
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.job:
        print(json.dumps(JOBS[args.job](args.data, args.threads)))
        return
    if args.generate:
        generate(args.generate, args.data)
        return

    data = WORK / f"engine-v5-{args.customers}"
    if not (data / "done").exists():
        # In a child too: a parent that held the data would pass its peak memory on to the
        # children it forks (Linux keeps ru_maxrss across fork and exec).
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--generate", str(args.customers), "--data", str(data)],
            check=True,
        )
        print(f"generated {data} in {time.perf_counter() - started:.1f} s")
    print("data:", (data / "done").read_text())

    unknown = set(args.only) - set(JOBS)
    if unknown:
        parser.error("unknown jobs in --only: {}".format(", ".join(sorted(unknown))))
    machine = [run_child("machine", data, args.threads)["seconds"]]
    if "run_all" in args.only:
        runs = run_interleaved(["run_all"], data, args.threads, args.repeat)["run_all"]
        run = _median_run(runs)
        peak = _peak(runs)
        print(
            f"run_all: {run['seconds']:.2f} s work, {run['wall']:.2f} s wall, "
            f"peak {peak:.0f} MiB (aims: 15 s, 2048 MiB) -> "
            f"time {run['seconds'] / 15:.2f}x of aim, memory {peak / 2048:.2f}x of aim"
            + _spread(runs)
        )
        for name, seconds in sorted(run["steps"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:22s} {seconds:7.2f} s")
        print("  churn window:", run["churn_window_days"], "days; KPIs:", run["kpis"])

    summary_jobs = [
        job
        for job in ("loyal_summary", "loyal_summary_in_memory", "lifetimes_summary")
        if job in args.only and not (job == "lifetimes_summary" and args.skip_lifetimes)
    ]
    if summary_jobs:
        compare_summaries(run_interleaved(summary_jobs, data, args.threads, args.repeat))
    machine.append(run_child("machine", data, args.threads)["seconds"])
    print(
        "machine: the fixed workload took {:.2f} s before the jobs and {:.2f} s after "
        "(compare runs on different days by it)".format(*machine)
    )


def compare_summaries(runs: dict[str, list[dict[str, Any]]]) -> None:
    """Print the summaries' times and the ratios to lifetimes', each from the same start: the
    paid orders in the Parquet file (both read them, timed), or already in memory."""
    for job, label in [
        ("loyal_summary", "loyal summarise, from the Parquet file"),
        ("loyal_summary_in_memory", "loyal summarise, orders in a DuckDB table"),
    ]:
        if job in runs:
            print(
                f"{label}: {_median(runs[job], 'seconds'):.2f} s, peak {_peak(runs[job]):.0f} "
                f"MiB, {runs[job][0]['rows']} customers" + _spread(runs[job])
            )
    if "lifetimes_summary" not in runs:
        return
    peer = runs["lifetimes_summary"]
    for run in peer:
        run["total_seconds"] = round(run["read_seconds"] + run["seconds"], 3)
    print(
        f"lifetimes summary_data_from_transaction_data: {_median(peer, 'seconds'):.2f} s "
        f"(+ {_median(peer, 'read_seconds'):.2f} s reading the file into pandas), peak "
        f"{_peak(peer):.0f} MiB, {peer[0]['rows']} customers" + _spread(peer)
    )
    comparisons = [
        ("from the file, both reading it", "loyal_summary", "total_seconds"),
        ("orders in memory, summaries alone", "loyal_summary_in_memory", "seconds"),
        ("lifetimes in memory against loyal from the file", "loyal_summary", "seconds"),
    ]
    for label, job, peer_key in comparisons:
        if job in runs:
            ratio = _median(peer, peer_key) / _median(runs[job], "seconds")
            memory = _peak(peer) / _peak(runs[job])
            print(f"ratio lifetimes / loyal ({label}): time {ratio:.1f}x, memory {memory:.1f}x")


if __name__ == "__main__":
    main()
