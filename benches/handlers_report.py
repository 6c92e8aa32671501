#!/usr/bin/env python3
"""The handler table: criterion's time per request (from target/criterion, written by
`cargo bench -p resilience-bench --bench handlers`) and callgrind's instructions per request.

Instructions per request come from two runs of the bench binary under valgrind's callgrind,
HANDLERS_CALLGRIND=<scenario>:<n> with n = 200 and n = 1200, counting only inside the bench's
`measured_requests` (`--toggle-collect`): the process start, the scenario's setup, the first
(untimed) request and the making of each request's input (the Lambda runtime's decoding of the
event) are not counted, and (I(1200) - I(200)) / 1000 cancels what the loop costs once.
Callgrind counts user-space instructions only (nothing here makes a system call per request but
the metrics lines on stdout). The bench binary needs its symbol table (`[profile.bench]`).

Usage: benches/handlers_report.py <bench binary>   (`make bench` passes it)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SCENARIOS = [
    ("orders_place_order", "orders: place an order (`POST /orders`, router, in-memory store)"),
    ("orders_get_order", "orders: get an order (`GET /orders/{id}`)"),
    ("inventory_reserve_stock", "inventory: reserve stock (`ReserveInventory` through the saga worker)"),
    ("payments_charge", "payments: charge (`ProcessPayment` through the saga worker, in-process fake provider)"),
    ("gateway_order_view", "gateway: order view (`GET /api/orders/{id}`, three downstreams in-process)"),
    ("outbox_relay_batch_of_10", "outbox relay: a stream batch of 10 records"),
]
LIMIT_US = 50.0
SMALL, LARGE = 200, 1200


def instructions(binary, scenario, requests, workdir):
    out = os.path.join(workdir, f"{scenario}-{requests}.out")
    env = dict(os.environ, HANDLERS_CALLGRIND=f"{scenario}:{requests}")
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--toggle-collect=handlers::measured_requests", f"--callgrind-out-file={out}", binary],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    if run.returncode != 0:
        sys.exit(f"callgrind run of {scenario} failed:\n{run.stderr[-2000:]}")
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
                if total < requests:
                    sys.exit(f"callgrind counted {total} instructions for {requests} requests of {scenario}: "
                             "no function handlers::measured_requests in the binary (built stripped?)")
                return total
    sys.exit(f"no instruction total in {out}")


def criterion_us(scenario):
    path = os.path.join("target", "criterion", "handlers", scenario, "new", "estimates.json")
    try:
        with open(path) as f:
            estimates = json.load(f)
    except FileNotFoundError:
        return None
    # iter_custom times `iters` requests: the slope is the time of one.
    estimate = estimates.get("slope") or estimates["mean"]
    return estimate["point_estimate"] / 1000.0


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: `apt-get install valgrind` (Debian's package)")
    over = []
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for scenario, what in SCENARIOS:
            us = criterion_us(scenario)
            if us is None:
                sys.exit(f"no criterion estimate for {scenario}: run `cargo bench -p resilience-bench --bench handlers` first")
            small = instructions(binary, scenario, SMALL, workdir)
            large = instructions(binary, scenario, LARGE, workdir)
            per_request = (large - small) / (LARGE - SMALL)
            rows.append(f"| {what} | {us:.1f} | {per_request:,.0f} |")
            if us > LIMIT_US:
                over.append(f"{scenario} ({us:.1f} us)")
    print("| request | us per request (criterion) | instructions per request (callgrind) |")
    print("| --- | ---: | ---: |")
    print("\n".join(rows))
    if over:
        sys.exit(f"above {LIMIT_US} us per request: {', '.join(over)}")


if __name__ == "__main__":
    main()
