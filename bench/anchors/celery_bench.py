#!/usr/bin/env python3
"""Celery beside bench-jobs: the same closed loop of trivial jobs.

This file is both the Celery application (its workers are started with
`celery -A celery_bench worker`) and the load client (`python3
celery_bench.py`). The task returns its argument. Broker and result
backend are the Redis named by $CELERY_BENCH_REDIS (databases 0 and 1).

The client keeps at most W tasks in flight, and each result lets the next
task be sent. Results are seen as Celery's Redis result backend publishes
them (on the channel celery-task-meta-ID, as AsyncResult.get waits for
them), but through one pattern subscription made before the first task is
sent, instead of a SUBSCRIBE and UNSUBSCRIBE per task: a cheaper client, so
that it takes less of the cores from the workers. It prints the figures in
bench-jobs' format.
"""

import argparse
import json
import os
import sys
import time

from celery import Celery
import redis

READY = ("SUCCESS", "FAILURE", "REVOKED")
REDIS = os.environ.get("CELERY_BENCH_REDIS", "redis://127.0.0.1:6379")

app = Celery("celery_bench", broker=REDIS + "/0", backend=REDIS + "/1")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


@app.task(name="echo")
def echo(x):
    return x


def ticks(pid):
    """utime + stime of pid and of its descendants alive now, in ticks."""
    children = {}
    own = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        p = int(entry)
        children.setdefault(int(fields[1]), []).append(p)
        own[p] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += own.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def percentile(values, q):
    if not values:
        return 0.0
    return values[int((len(values) - 1) * q + 0.5)]


def wait_workers(n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= n:
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--inflight", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--label", default="Celery")
    ap.add_argument("--pid", action="append", default=[],
                    help="NAME=PID: report its CPU time (with its children)")
    args = ap.parse_args()

    procs = []
    for spec in args.pid:
        name, _, pid = spec.partition("=")
        procs.append([name, int(pid), 0, 0])

    if not wait_workers(args.workers):
        print(f"{args.workers} Celery workers did not answer in 60 s",
              file=sys.stderr)
        return 1
    # One round trip first: connections and the result subscriber are set
    # up outside the measured time, as bench-jobs opens its connections.
    echo.delay(0).get(timeout=30)

    results = redis.Redis.from_url(REDIS + "/1").pubsub(
        ignore_subscribe_messages=True)
    results.psubscribe("celery-task-meta-*")
    pending = {}  # task id -> send time
    submit_lat, e2e_lat = [], []
    sent = completed = failed = 0
    stall = 30.0

    def send():
        nonlocal sent
        t0 = time.monotonic()
        result = echo.apply_async((sent,))
        t1 = time.monotonic()
        submit_lat.append(t1 - t0)
        pending[result.id] = t0
        sent += 1

    print(f"== {args.label}: {args.jobs} jobs, {args.inflight} in flight")
    sys.stdout.flush()
    for p in procs:
        p[2] = ticks(p[1])
    cpu0 = os.times()
    start = last = time.monotonic()
    while completed + failed < args.jobs:
        while len(pending) < args.inflight and sent < args.jobs:
            send()
        message = results.get_message(timeout=1.0)
        now = time.monotonic()
        while message is not None:
            if message["type"] == "pmessage":
                meta = json.loads(message["data"])
                t0 = pending.pop(meta.get("task_id"), None)
                if t0 is not None and meta.get("status") in READY:
                    e2e_lat.append(now - t0)
                    if meta["status"] == "SUCCESS":
                        completed += 1
                    else:
                        failed += 1
                    last = now
                elif t0 is not None:
                    pending[meta["task_id"]] = t0  # not ended yet
            message = results.get_message(timeout=0)
        if now - last > stall:
            print(f"nothing ended for {stall:.0f} s: stopping",
                  file=sys.stderr)
            break
    cpu1 = os.times()
    for p in procs:
        p[3] = ticks(p[1])

    secs = last - start
    submit_lat.sort()
    e2e_lat.sort()
    hz = os.sysconf("SC_CLK_TCK")
    print(f"jobs submitted        {sent} accepted of {args.jobs} "
          f"(apply_async never refuses)")
    print(f"completed             {completed}")
    print(f"failed                {failed}")
    print(f"not seen ending       {len(pending)}")
    print(f"time                  {secs:.2f} s (first submit to last "
          f"result)")
    print(f"jobs per second       {completed / secs if secs else 0:.0f}")
    print(f"submit latency        p50 {percentile(submit_lat, .5) * 1e3:.2f} "
          f"ms  p99 {percentile(submit_lat, .99) * 1e3:.2f} ms  "
          f"(apply_async returns)")
    print(f"end to end            p50 {percentile(e2e_lat, .5) * 1e3:.2f} ms "
          f" p99 {percentile(e2e_lat, .99) * 1e3:.2f} ms  (apply_async -> "
          f"result seen)")
    for name, _, t0, t1 in procs:
        cpu = (t1 - t0) / hz
        print(f"CPU {name:<17} {cpu:.2f} s, "
              f"{cpu * 1e6 / completed if completed else 0:.0f} us per job")
    client = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    print(f"CPU {'client':<17} {client:.2f} s, "
          f"{client * 1e6 / completed if completed else 0:.0f} us per job")
    return 0 if completed == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
