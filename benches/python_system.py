#!/usr/bin/env python3
"""Baseline for the systems benchmark: the Python `eventsourcing` library
(version 9.5.6, from PyPI) running the "orders system" with its own
`System` and runners.

Run it through `benches/python_system.sh`, which makes a virtualenv with
that version installed. The workload is the one the Rust side implements:

    System(pipes=[[Orders, Reservations, Orders, Payments, Orders]])

* `Orders.create_new_order()` creates and saves an `Order` (`Order.Created`);
* `Reservations`, on `Order.Created`, creates a `Reservation`
  (`Reservation.Created`, carrying the order's id);
* `Orders`, on `Reservation.Created`, calls `order.set_is_reserved(...)`
  (`Order.Reserved`);
* `Payments`, on `Order.Reserved`, creates a `Payment`
  (`Payment.Created`, carrying the order's id);
* `Orders`, on `Payment.Created`, calls `order.set_is_paid(...)`
  (`Order.Paid`).

N orders are placed one after another from the main thread, through the
runner's `Orders` application; then the script waits until every order is
paid, checks that each was reserved and paid exactly once, and prints

    python_s1_orders_per_s_<runner>_<persistence> <value>
    python_s1_p50_ms_<runner>_<persistence> <value>
    python_s1_p99_ms_<runner>_<persistence> <value>

on standard output (everything else goes to standard error, prefixed
with '#').

orders/s is N divided by the time from the first placement to the moment
all orders are paid. An order's latency is the timestamp of its
`Order.Paid` event minus that of its `Order.Created` event (both read
back from the Orders application's event store); p50 and p99 are
nearest-rank percentiles over the N orders.

Runners: `--runner single` (SingleThreadedRunner: a save() returns only
after the whole cascade it starts has been processed, so the last
placement returning is the moment all orders are paid) and
`--runner threads` (MultiThreadedRunner: one thread per follower, woken by
its leaders after each save; the main thread polls the orders until all
are paid). The orders are placed as fast as the main thread can, so with
`threads` the followers fall behind and the latencies measure that
backlog.

Persistence: `--persistence popo` (in memory) or `--persistence sqlite`:
one fresh SQLite file per application, in a temporary directory, named by
`<APP>_SQLITE_DBNAME` with `PERSISTENCE_MODULE=eventsourcing.sqlite`
(given to the runner as its `env`). The applications cannot share one
file: the library gives every application the same table names. SQLite's
`synchronous` is left as the library leaves it unless
`--sqlite-synchronous` is given.

The followers declare no `topics`, as in the library's documentation, so
each one also records a tracking position for the events its policy
ignores: nine transactions per order in all.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import version as installed_version
from typing import Any
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.system import (
    MultiThreadedRunner,
    ProcessApplication,
    Runner,
    SingleThreadedRunner,
    System,
)

EXPECTED_VERSION = "9.5.6"


# --- Domain model ---------------------------------------------------------


class Order(Aggregate):
    @event("Created")
    def __init__(self) -> None:
        self.reservation_id: UUID | None = None
        self.payment_id: UUID | None = None

    @classmethod
    def create(cls) -> Order:
        return cls()

    @property
    def is_reserved(self) -> bool:
        return self.reservation_id is not None

    @property
    def is_paid(self) -> bool:
        return self.payment_id is not None

    @event("Reserved")
    def set_is_reserved(self, reservation_id: UUID) -> None:
        self.reservation_id = reservation_id

    @event("Paid")
    def set_is_paid(self, payment_id: UUID) -> None:
        self.payment_id = payment_id


class Reservation(Aggregate):
    @event("Created")
    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id

    @classmethod
    def create(cls, order_id: UUID) -> Reservation:
        return cls(order_id=order_id)


class Payment(Aggregate):
    @event("Created")
    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id

    @classmethod
    def create(cls, order_id: UUID) -> Payment:
        return cls(order_id=order_id)


# --- Applications ---------------------------------------------------------


class Orders(ProcessApplication):
    def create_new_order(self) -> UUID:
        order = Order.create()
        self.save(order)
        return order.id

    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        """Events of no interest are ignored."""

    @policy.register(Reservation.Created)
    def _(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        order: Order = self.repository.get(domain_event.order_id)
        order.set_is_reserved(reservation_id=domain_event.originator_id)
        processing_event.collect_events(order)

    @policy.register(Payment.Created)
    def _(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        order: Order = self.repository.get(domain_event.order_id)
        order.set_is_paid(payment_id=domain_event.originator_id)
        processing_event.collect_events(order)


class Reservations(ProcessApplication):
    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        """Events of no interest are ignored."""

    @policy.register(Order.Created)
    def _(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        reservation = Reservation.create(order_id=domain_event.originator_id)
        processing_event.collect_events(reservation)


class Payments(ProcessApplication):
    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        """Events of no interest are ignored."""

    @policy.register(Order.Reserved)
    def _(self, domain_event: Any, processing_event: ProcessingEvent) -> None:
        payment = Payment.create(order_id=domain_event.originator_id)
        processing_event.collect_events(payment)


system = System(pipes=[[Orders, Reservations, Orders, Payments, Orders]])

RUNNERS: dict[str, type[Runner[Any]]] = {
    "single": SingleThreadedRunner,
    "threads": MultiThreadedRunner,
}
PERSISTENCES = ("popo", "sqlite")


# --- Measurement ----------------------------------------------------------


class BenchmarkFailure(Exception):
    pass


def note(*args: object) -> None:
    print("#", *args, file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def set_sqlite_synchronous(mode: str) -> None:
    """Opt-in (--sqlite-synchronous): the library leaves SQLite's
    `synchronous` at the build's default (FULL here), so each commit in WAL
    mode waits for an fsync. This sets it on every connection the library
    opens, to compare with runs of the Rust side at the same setting."""
    from eventsourcing.sqlite import SQLiteConnectionPool

    create_connection = SQLiteConnectionPool._create_connection

    def _create_connection(self: SQLiteConnectionPool) -> Any:
        connection = create_connection(self)
        connection._sqlite_conn.execute(f"PRAGMA synchronous={mode}")
        return connection

    SQLiteConnectionPool._create_connection = _create_connection  # type: ignore[method-assign]


def persistence_env(persistence: str, tmpdir: str | None) -> dict[str, str]:
    if persistence == "popo":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    assert tmpdir is not None
    # Every application of the library records in tables of the same names
    # ("stored_events", "notification_tracking"), so two applications cannot
    # share one SQLite file: each gets its own, named by the variable
    # prefixed with the application's name, as in the library's own tests.
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
    for app_cls in (Orders, Reservations, Payments):
        path = os.path.join(tmpdir, f"{app_cls.name.lower()}.sqlite")
        env[f"{app_cls.name.upper()}_SQLITE_DBNAME"] = path
    return env


def wait_until_all_paid(
    runner: Runner[Any],
    orders: Orders,
    order_ids: list[UUID],
    timeout: float,
    poll_interval: float,
) -> None:
    """Polls the orders, in the order they were placed, until all are paid.

    Orders found paid are not looked at again; each poll starts at the
    first order not yet seen paid and stops at the first one still unpaid.
    """
    deadline = time.monotonic() + timeout
    has_errored = getattr(runner, "has_errored", None)
    i = 0
    n = len(order_ids)
    while True:
        while i < n:
            order: Order = orders.repository.get(order_ids[i])
            if not order.is_paid:
                break
            i += 1
        if i == n:
            return
        if has_errored is not None and has_errored.is_set():
            msg = "a runner thread failed while processing"
            raise BenchmarkFailure(msg)
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout} s: only {i} of {n} orders paid"
            raise BenchmarkFailure(msg)
        time.sleep(poll_interval)


def count_created(app: ProcessApplication, created_cls: type) -> dict[UUID, int]:
    """Reads the application's whole notification log and returns, for each
    order id, how many aggregates of the given kind were created for it.
    Fails if the log holds anything but such creations."""
    per_order: dict[UUID, int] = {}
    originators: set[UUID] = set()
    start: int | None = 1
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=500)
        if not notifications:
            break
        for notification in notifications:
            domain_event = app.mapper.to_domain_event(notification)
            if not isinstance(domain_event, created_cls):
                msg = f"{app.name} recorded an unexpected event {domain_event!r}"
                raise BenchmarkFailure(msg)
            if domain_event.originator_id in originators:
                msg = f"{app.name}: aggregate created twice"
                raise BenchmarkFailure(msg)
            originators.add(domain_event.originator_id)
            order_id = domain_event.order_id
            per_order[order_id] = per_order.get(order_id, 0) + 1
        start = notifications[-1].id + 1
    return per_order


def verify_and_measure(
    orders: Orders,
    reservations: Reservations,
    payments: Payments,
    order_ids: list[UUID],
) -> list[float]:
    """Checks every order was reserved and paid exactly once, and returns the
    latencies (Paid timestamp - Created timestamp) in milliseconds."""
    n = len(order_ids)
    if len(set(order_ids)) != n:
        msg = "duplicate order ids"
        raise BenchmarkFailure(msg)

    latencies = []
    for order_id in order_ids:
        events = list(orders.events.get(order_id))
        created = [e for e in events if isinstance(e, Order.Created)]
        reserved = [e for e in events if isinstance(e, Order.Reserved)]
        paid = [e for e in events if isinstance(e, Order.Paid)]
        if len(created) != 1 or len(reserved) != 1 or len(paid) != 1:
            msg = (
                f"order {order_id}: {len(created)} Created, {len(reserved)} "
                f"Reserved, {len(paid)} Paid events (expected one of each)"
            )
            raise BenchmarkFailure(msg)
        if len(events) != 3:
            msg = f"order {order_id}: {len(events)} events (expected 3)"
            raise BenchmarkFailure(msg)
        delta = paid[0].timestamp - created[0].timestamp
        latencies.append(delta.total_seconds() * 1000.0)

    orders_max = orders.recorder.max_notification_id() or 0
    if orders_max != 3 * n:
        msg = f"Orders recorded {orders_max} events (expected {3 * n})"
        raise BenchmarkFailure(msg)

    expected = dict.fromkeys(order_ids, 1)
    for app, created_cls, what in (
        (reservations, Reservation.Created, "Reservation"),
        (payments, Payment.Created, "Payment"),
    ):
        per_order = count_created(app, created_cls)
        total = sum(per_order.values())
        if total != n or per_order != expected:
            msg = (
                f"{total} {what} aggregates for {len(per_order)} orders "
                f"(expected exactly one for each of the {n} orders)"
            )
            raise BenchmarkFailure(msg)
    return latencies


def run_once(
    runner_name: str,
    persistence: str,
    n: int,
    timeout: float,
    poll_interval: float,
) -> tuple[float, float, float]:
    tmpdir = tempfile.mkdtemp(prefix="es-python-system-") if persistence == "sqlite" else None
    try:
        env = persistence_env(persistence, tmpdir)
        runner = RUNNERS[runner_name](system, env=env)
        runner.start()
        try:
            orders = runner.get(Orders)
            reservations = runner.get(Reservations)
            payments = runner.get(Payments)

            order_ids: list[UUID] = []
            started = time.perf_counter()
            for _ in range(n):
                order_ids.append(orders.create_new_order())
            last_placed = time.perf_counter()
            if runner_name == "single":
                # The single-threaded runner processes the whole cascade
                # within save(): when the last placement returns, every
                # order is paid (checked below, outside the timing).
                finished = time.perf_counter()
            else:
                wait_until_all_paid(runner, orders, order_ids, timeout, poll_interval)
                finished = time.perf_counter()
            all_paid_in = finished - started
            placing_took = last_placed - started

            latencies = verify_and_measure(orders, reservations, payments, order_ids)
        finally:
            runner.stop()
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    latencies.sort()
    orders_per_s = n / all_paid_in
    p50 = percentile(latencies, 50)
    p99 = percentile(latencies, 99)
    note(
        f"{runner_name}/{persistence} N={n}: all paid after {all_paid_in:.3f} s "
        f"(placing took {placing_took:.3f} s), "
        f"{orders_per_s:.1f} orders/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
        f"max {latencies[-1]:.3f} ms; all {n} orders reserved and paid once"
    )
    return orders_per_s, p50, p99


def measure(
    runner_name: str,
    persistence: str,
    n: int,
    runs: int,
    timeout: float,
    poll_interval: float,
    label: str,
) -> bool:
    key = f"{runner_name}_{label}"
    results = []
    for i in range(runs):
        note(f"run {i + 1}/{runs}: runner={runner_name} persistence={persistence} N={n}")
        try:
            results.append(run_once(runner_name, persistence, n, timeout, poll_interval))
        except Exception as e:  # report and go on with the other combinations
            note(f"FAILED {key}: {type(e).__name__}: {e}")
            print(f"# python_s1_{key} FAILED: {type(e).__name__}: {e}", flush=True)
            return False
    orders_per_s = statistics.median(r[0] for r in results)
    p50 = statistics.median(r[1] for r in results)
    p99 = statistics.median(r[2] for r in results)
    print(f"python_s1_orders_per_s_{key} {orders_per_s:.1f}", flush=True)
    print(f"python_s1_p50_ms_{key} {p50:.3f}", flush=True)
    print(f"python_s1_p99_ms_{key} {p99:.3f}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="N (default 2000)")
    parser.add_argument("--runner", choices=sorted(RUNNERS), default="single")
    parser.add_argument("--persistence", choices=PERSISTENCES, default="popo")
    parser.add_argument(
        "--all",
        action="store_true",
        help="all four runner/persistence combinations, each the median of --runs",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="runs per combination, the median reported (default 1, or 3 with --all)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for all orders to be paid (threads runner; "
        "default max(300, N/10))",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.002,
        help="seconds between polls of the orders (threads runner; default 0.002)",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=("OFF", "NORMAL", "FULL"),
        type=str.upper,
        default=None,
        help="set SQLite's synchronous pragma on the library's connections "
        "(not done by default; the figures are then labelled sqlite_<mode>)",
    )
    args = parser.parse_args(argv)

    if args.orders < 1:
        parser.error("--orders must be at least 1")
    have = installed_version("eventsourcing")
    if have != EXPECTED_VERSION:
        note(f"WARNING: eventsourcing {have} installed, the baseline is {EXPECTED_VERSION}")
    runs = args.runs if args.runs is not None else (3 if args.all else 1)
    timeout = args.timeout if args.timeout is not None else max(300.0, args.orders / 10)
    note(f"eventsourcing {have}, Python {sys.version.split()[0]}, N={args.orders}")
    sqlite_label = "sqlite"
    if args.sqlite_synchronous is not None:
        set_sqlite_synchronous(args.sqlite_synchronous)
        sqlite_label = f"sqlite_{args.sqlite_synchronous.lower()}"

    if args.all:
        combos = [(r, p) for r in ("single", "threads") for p in PERSISTENCES]
    else:
        combos = [(args.runner, args.persistence)]
    ok = True
    for runner_name, persistence in combos:
        label = sqlite_label if persistence == "sqlite" else persistence
        ok &= measure(
            runner_name, persistence, args.orders, runs, timeout, args.poll_interval, label
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
