"""Buy-till-you-die end to end: Loyal vs lifetimes vs PyMC-Marketing, measured in one run.

    .venv/bin/python benchmarks/btyd.py                      # 1,000,000 customers (minutes)
    .venv/bin/python benchmarks/btyd.py --customers 20000    # smoke size
    .venv/bin/python benchmarks/btyd.py --skip-pymc          # no PyMC-Marketing venv

The data set is a seeded BG/NBD purchase process with Gamma-Gamma spend (about 8 transactions
per customer over two years, see ``loyal.engine.btyd.simulate.simulate_transactions``), written
once as Parquet under ``benchmarks/.work/`` and reused.

Each peer runs in its own child process, which reports its timings; the parent reads the
child's peak resident memory (``ru_maxrss`` from ``wait4``) and wall time. Every peer does the
same job from the raw transactions:

- lifetimes 0.11.3: ``summary_data_from_transaction_data`` (pandas) + ``BetaGeoFitter`` +
  ``GammaGammaFitter`` + ``conditional_probability_alive`` +
  ``conditional_expected_number_of_purchases_up_to_time`` (90 days) +
  ``customer_lifetime_value`` (12 months, 1 % a month).
- Loyal: ``summarise`` (``customer_summary`` aggregated in NumPy) on DuckDB through Ibis
  (reading the Parquet file directly, with ``memory_limit`` 500MB by default, see
  ``--memory-limit``), then the same models and predictions (``score_customers``), fitted on the distinct (x, t_x, T) patterns.
- PyMC-Marketing 0.19.2 (own venv, ``benchmarks/.work/pymc-venv``: it needs pandas 3, which
  clashes with lifelines): ``rfm_summary`` + ``BetaGeoModel.fit(method="map")`` with HalfFlat
  priors, so that MAP is the maximum-likelihood estimate. Run twice: with an empty PyTensor
  compile cache (cold) and again (warm). Its scope is smaller (no Gamma-Gamma or CLV).

"work" is the time from reading the data to the last prediction (imports excluded), "cpu" the
CPU seconds all threads of the child spent on it (steadier than wall time on a shared machine;
it misses PyTensor's compiler subprocesses), and "wall" the whole child process, interpreter
start and imports included. The log-likelihood of every peer's BG/NBD estimate is evaluated by
the parent on the same summary with one function, so that column compares optima, not
implementations. Loyal runs twice: on naive UTC timestamps and on timezone-aware ones
("loyal-tz"; ``customer_summary`` reads both as integer epoch microseconds on DuckDB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PYMC_VENV = WORK / "pymc-venv"
PYMC_SPEC = "pymc-marketing==0.19.2"
START = "2023-01-01"
AS_OF = "2024-12-31"  # the data end at 2025-01-01 00:00 UTC; as_of covers the whole last day
HORIZON_DAYS = 90
CLV_MONTHS = 12
DISCOUNT = 0.01
SEED = 20240101


# Data ------------------------------------------------------------------------------------


def dataset(customers: int) -> tuple[Path, Path]:
    """The transaction log for ``customers`` customers as Parquet, generated once.

    Two copies: ``ordered_at`` as naive UTC timestamps (how Parquet often stores instants) and
    as timezone-aware UTC (the engine's source schema). lifetimes and PyMC-Marketing read the
    first; Loyal runs on both, to check that aware timestamps cost it nothing more.
    """
    naive = WORK / "btyd_{}_{}.parquet".format(customers, SEED)
    aware = WORK / "btyd_{}_{}_tz.parquet".format(customers, SEED)
    if naive.exists() and aware.exists():
        return naive, aware
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from loyal.engine.btyd.simulate import simulate_transactions

    WORK.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    table = simulate_transactions(
        customers,
        start=datetime(2023, 1, 1, tzinfo=UTC),
        acquisition_days=365,
        as_of=datetime(2025, 1, 1, tzinfo=UTC),
        # alpha in days: about 7 repeat purchases per customer on average.
        bgnbd=(0.75, 16.0, 0.8, 3.0),
        gamma_gamma=(6.0, 4.0, 15.0),
        seed=SEED,
    )
    naive_schema = table.schema.set(1, pa.field("ordered_at", pa.timestamp("us")))
    for path, version in ((aware, table), (naive, table.cast(naive_schema))):
        tmp = path.with_suffix(".tmp")
        pq.write_table(version, tmp, row_group_size=1 << 20)
        tmp.rename(path)
    print(
        "generated {:,} transactions of {:,} customers in {:.1f} s -> {}".format(
            table.num_rows, customers, time.perf_counter() - began, naive.relative_to(HERE.parent)
        )
    )
    return naive, aware


# Peers (each runs in a child process) ------------------------------------------------------


class Clock:
    """Named step timings."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.began_cpu = time.process_time()
        self.last = self.began
        self.steps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = now - self.last
        self.last = now

    @property
    def total(self) -> float:
        return self.last - self.began

    @property
    def cpu(self) -> float:
        """CPU seconds of all the process's threads since the start."""
        return time.process_time() - self.began_cpu


def peer_loyal(data: Path, out: Path, memory_limit: str = "500MB") -> dict[str, Any]:
    import ibis
    import ibis.backends.duckdb  # noqa: F401 - ibis.duckdb imports it on first use (0.2 s)
    import numpy as np

    from loyal.engine.btyd import (
        BetaGeoModel,
        GammaGammaModel,
        group_histories,
        score_customers,
    )
    from loyal.engine.summary import summarise

    clock = Clock()
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    # Row order is irrelevant to an aggregation; not keeping it saves DuckDB memory, and so
    # does a memory limit (DuckDB then partitions its hash tables, spilling if it must).
    con.raw_sql("SET preserve_insertion_order = false")
    if memory_limit != "none":
        con.raw_sql("SET memory_limit = '{}'".format(memory_limit))
    orders = con.read_parquet(data)
    summary = summarise(orders, _date(AS_OF), period="D")
    con.disconnect()  # the models need only the summary: give DuckDB's memory back
    ids = summary["customer_id"].to_numpy()
    freq, rec, age, money = (
        summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value")
    )
    del summary
    clock.lap("summary")
    patterns = group_histories(freq, rec, age)
    x, t_x, t_age, counts, _ = patterns
    clock.lap("group")
    bgnbd = BetaGeoModel().fit(x, t_x, t_age, weights=counts)
    clock.lap("fit_bgnbd")
    repeat = freq > 0
    spend = GammaGammaModel().fit(freq[repeat], money[repeat])
    clock.lap("fit_gamma_gamma")
    scores = score_customers(
        bgnbd,
        spend,
        freq,
        rec,
        age,
        money,
        horizon=HORIZON_DAYS,
        months=CLV_MONTHS,
        discount_rate=DISCOUNT,
        time_unit="D",
        patterns=patterns,
    )
    clock.lap("predict_and_clv")
    order = np.argsort(ids, kind="stable")
    np.savez(
        out.with_suffix(".npz"),
        customer_id=ids[order],
        frequency=freq[order],
        recency=rec[order],
        T=age[order],
        p_alive=scores["p_alive"].to_numpy()[order],
        expected=scores["expected_purchases"].to_numpy()[order],
        clv=scores["clv"].to_numpy()[order],
    )
    return {
        "steps": clock.steps,
        "work": clock.total,
        "work_cpu": clock.cpu,
        "customers": int(ids.shape[0]),
        "patterns": int(x.shape[0]),
        "bgnbd": bgnbd.params_.as_dict(),
        "gamma_gamma": spend.params_.as_dict(),
        "own_log_likelihood": bgnbd.log_likelihood_,
        "iterations": bgnbd.n_iter_,
        "memory_limit": memory_limit,
    }


def peer_lifetimes(data: Path, out: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    clock = Clock()
    orders = pd.read_parquet(data)
    clock.lap("read")
    summary = summary_data_from_transaction_data(
        orders,
        "customer_id",
        "ordered_at",
        monetary_value_col="revenue",
        observation_period_end=AS_OF,
        freq="D",
    )
    del orders
    clock.lap("summary")
    freq, rec, age = summary["frequency"], summary["recency"], summary["T"]
    bgf = BetaGeoFitter().fit(freq, rec, age)
    clock.lap("fit_bgnbd")
    repeat = summary[freq > 0]
    ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    clock.lap("fit_gamma_gamma")
    p_alive = bgf.conditional_probability_alive(freq, rec, age)
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(HORIZON_DAYS, freq, rec, age)
    clock.lap("predict")
    clv = ggf.customer_lifetime_value(
        bgf,
        freq,
        rec,
        age,
        summary["monetary_value"],
        time=CLV_MONTHS,
        discount_rate=DISCOUNT,
        freq="D",
    )
    clock.lap("clv")
    order = np.argsort(summary.index.to_numpy(), kind="stable")
    np.savez(
        out.with_suffix(".npz"),
        customer_id=summary.index.to_numpy()[order],
        p_alive=np.asarray(p_alive)[order],
        expected=np.asarray(expected)[order],
        clv=np.asarray(clv)[order],
    )
    params = bgf.params_
    return {
        "steps": clock.steps,
        "work": clock.total,
        "work_cpu": clock.cpu,
        "customers": int(len(summary)),
        "bgnbd": {k: float(params[k]) for k in ("r", "alpha", "a", "b")},
        "gamma_gamma": {
            k: float(ggf.params_[v]) for k, v in (("p", "p"), ("q", "q"), ("gamma", "v"))
        },
        # lifetimes minimises the mean negative log-likelihood over customers.
        "own_log_likelihood": -float(bgf._negative_log_likelihood_) * len(summary),
    }


def peer_pymc(data: Path, out: Path) -> dict[str, Any]:
    import pandas as pd
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel
    from pymc_marketing.clv.utils import rfm_summary

    clock = Clock()
    orders = pd.read_parquet(data)
    clock.lap("read")
    summary = rfm_summary(
        orders, "customer_id", "ordered_at", observation_period_end=AS_OF, time_unit="D"
    )
    del orders
    clock.lap("summary")
    flat = {name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
    model = BetaGeoModel(model_config=flat)
    model.fit(data=summary, method="map")
    clock.lap("fit_bgnbd")
    post = model.idata.posterior
    params = {k: float(post[k].values.reshape(-1)[0]) for k in ("r", "alpha", "a", "b")}
    return {
        "steps": clock.steps,
        "work": clock.total,
        "work_cpu": clock.cpu,
        "customers": int(len(summary)),
        "bgnbd": params,
    }


PEERS = {"loyal": peer_loyal, "lifetimes": peer_lifetimes, "pymc": peer_pymc}


def _date(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)


# Parent ------------------------------------------------------------------------------------


def run_child(
    name: str,
    python: str,
    data: Path,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run one peer in a fresh process; add its wall time and peak memory."""
    out = WORK / "result_{}.json".format(name)
    out.unlink(missing_ok=True)
    cmd = [python, str(Path(__file__).resolve()), "--peer", name.split("-")[0], "--data"]
    cmd += [str(data), "--out", str(out), *extra]
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out.exists():
        return {"name": name, "error": "exit code {}".format(proc.returncode)}
    result = json.loads(out.read_text())
    result.update(name=name, wall=wall, peak_mb=usage.ru_maxrss / 1024.0)
    return result


def median_run(
    name: str, python: str, data: Path, repeat: int, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The run with the median work time of ``repeat`` runs (a shared machine is noisy)."""
    runs = [run_child(name, python, data, extra=extra) for _ in range(max(repeat, 1))]
    good = sorted((r for r in runs if "error" not in r), key=lambda r: r["work"])
    if not good:
        return runs[0]
    chosen = good[(len(good) - 1) // 2]
    chosen["runs"] = [round(r["work"], 2) for r in good]
    return chosen  # the saved predictions are the same for every run


def pymc_python() -> str | None:
    """The PyMC-Marketing venv's interpreter, created on first use; None if that fails."""
    python = PYMC_VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run(
            [str(python), "-c", "import pymc_marketing, pymc_extras"], capture_output=True
        )
        if check.returncode == 0:
            return str(python)
    print("creating {} with {} (once; a few minutes)".format(PYMC_VENV, PYMC_SPEC))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PYMC_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", PYMC_SPEC, "pyarrow"], check=True
        )
    except (subprocess.CalledProcessError, OSError) as error:
        print("PyMC-Marketing could not be installed ({}): continuing without it".format(error))
        return None
    return str(python)


def log_likelihoods(results: list[dict[str, Any]]) -> None:
    """Evaluate every BG/NBD estimate on Loyal's summary with one likelihood function."""
    import numpy as np

    from loyal.engine.btyd import bgnbd_log_likelihood, group_histories
    from loyal.engine.btyd._fitting import Histories

    saved = np.load(WORK / "result_loyal.npz")
    x, t_x, age, counts, _ = group_histories(saved["frequency"], saved["recency"], saved["T"])
    data = Histories.from_arrays(x, t_x, age, counts)
    for result in results:
        if "bgnbd" in result:
            params = [result["bgnbd"][k] for k in ("r", "alpha", "a", "b")]
            result["log_likelihood"] = bgnbd_log_likelihood(np.log(params), data)[0]


def agreement(results: list[dict[str, Any]]) -> dict[str, float]:
    """Largest relative difference of Loyal's and lifetimes' per-customer predictions."""
    import numpy as np

    ours = np.load(WORK / "result_loyal.npz")
    theirs = np.load(WORK / "result_lifetimes.npz")
    if not np.array_equal(ours["customer_id"], theirs["customer_id"]):
        return {}
    return {
        key: float(np.max(np.abs(ours[key] - theirs[key]) / np.maximum(np.abs(theirs[key]), 1e-9)))
        for key in ("p_alive", "expected", "clv")
    }


def report(results: list[dict[str, Any]], customers: int) -> None:
    print()
    print(
        "BG/NBD + Gamma-Gamma + P(alive) + E[purchases in {} days] + {}-month CLV, "
        "{:,} customers".format(HORIZON_DAYS, CLV_MONTHS, customers)
    )
    header = "{:<12} {:>8} {:>8} {:>8} {:>8} {:>18}  {}".format(
        "peer", "work s", "cpu s", "wall s", "peak MB", "BG/NBD log-lik", "steps (s)"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print("{:<16} failed: {}".format(r["name"], r["error"]))
            continue
        steps = ", ".join("{} {:.2f}".format(k, v) for k, v in r["steps"].items())
        print(
            "{:<12} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.0f} {:>18.4f}  {}".format(
                r["name"],
                r["work"],
                r["work_cpu"],
                r["wall"],
                r["peak_mb"],
                r.get("log_likelihood", float("nan")),
                steps,
            )
        )
    by_name = {r["name"]: r for r in results if "error" not in r}
    ours = [name for name in by_name if name.startswith("loyal")]
    if not ours:
        return
    print()
    for mine in ours:
        loyal = by_name[mine]
        for name, peer in by_name.items():
            if name.startswith("loyal"):
                continue
            gain = (loyal["log_likelihood"] - peer["log_likelihood"]) / abs(peer["log_likelihood"])
            print(
                "{:<9} vs {:<10} speed-up {:>5.1f}x work, {:>5.1f}x cpu, {:>5.1f}x wall; "
                "memory {:.2f}x ({:.0f} vs {:.0f} MB); log-lik relative gain {:+.1e}".format(
                    mine,
                    name,
                    peer["work"] / loyal["work"],
                    peer["work_cpu"] / loyal["work_cpu"],
                    peer["wall"] / loyal["wall"],
                    loyal["peak_mb"] / peer["peak_mb"],
                    loyal["peak_mb"],
                    peer["peak_mb"],
                    gain,
                )
            )
    if "lifetimes" in by_name and "loyal" in by_name:
        diffs = agreement(results)
        if diffs:
            print(
                "Loyal vs lifetimes predictions, largest relative difference: "
                + ", ".join("{} {:.1e}".format(k, v) for k, v in diffs.items())
            )
    for mine in ours:
        if "runs" in by_name[mine]:
            print("{} work seconds of each run: {}".format(mine, by_name[mine]["runs"]))
    loyal = by_name[ours[0]]
    print(
        "Loyal: {:,} distinct (x, t_x, T) of {:,} customers; BG/NBD {}".format(
            loyal["patterns"],
            loyal["customers"],
            ", ".join("{} {:.4g}".format(k, v) for k, v in loyal["bgnbd"].items()),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each Loyal peer (the median is shown)"
    )
    parser.add_argument("--skip-pymc", action="store_true")
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument(
        "--memory-limit",
        default="500MB",
        help="DuckDB memory_limit for Loyal ('none' for DuckDB's default of 80%% of RAM)",
    )
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer == "loyal":
        result = peer_loyal(args.data, args.out, args.memory_limit)
        args.out.write_text(json.dumps(result))
        return
    if args.peer:
        result = PEERS[args.peer](args.data, args.out)
        args.out.write_text(json.dumps(result))
        return

    if args.generate:
        dataset(args.customers)
        return

    # In a child: a parent that held the data would pass its peak memory on to the children it
    # starts (Linux keeps ru_maxrss across exec, and a vfork child execs from the parent's memory).
    generate = [sys.executable, __file__, "--generate", "--customers", str(args.customers)]
    subprocess.run(generate, check=True)
    data, data_tz = dataset(args.customers)
    limit = ("--memory-limit", args.memory_limit)
    results = [
        median_run("loyal", sys.executable, data, args.repeat, extra=limit),
        median_run("loyal-tz", sys.executable, data_tz, args.repeat, extra=limit),
    ]
    if not args.skip_lifetimes:
        results.append(run_child("lifetimes", sys.executable, data))
    if not args.skip_pymc:
        python = pymc_python()
        if python is not None:
            env = dict(os.environ)
            cache = WORK / "pytensor-cache"
            shutil.rmtree(cache, ignore_errors=True)
            env["PYTENSOR_FLAGS"] = "base_compiledir={}".format(cache)
            results.append(run_child("pymc-cold", python, data, env))
            results.append(run_child("pymc-warm", python, data, env))
    log_likelihoods(results)
    report(results, args.customers)


if __name__ == "__main__":
    main()
