#!/usr/bin/env python3
"""A jobwire worker in Python, written from docs/PROTOCOL.md alone.

It serves one job type, `py-wordcount`: it counts the words, lines and
characters of params.text, reporting progress as it goes. It needs only
Debian's python3-zmq:

    python3 examples/python-worker.py --runtime-dir "$XDG_RUNTIME_DIR/jobwire"

The broker's endpoints are found like the C processes find them: the
ipc:// paths `workers` and `worker-events` in the runtime directory
(--runtime-dir, else $JOBWIRE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/jobwire),
or --workers/--worker-events with any ZeroMQ address. SIGTERM or SIGINT
ends it cleanly: a job in progress is handed back to the broker.
"""

import argparse
import json
import os
import signal
import socket
import sys
import time

import zmq

TYPE = {
    "name": "py-wordcount",
    "description": "counts the words, lines and characters of `text` "
                   "(a worker in Python)",
    "params": [
        {"name": "text", "type": "string", "required": True},
        {"name": "delay_ms", "type": "integer", "required": False},
    ],
}
HELLO_RETRY_S = 2.0
WORDS_PER_STEP = 100


def log(*args):
    print("python-worker:", *args, file=sys.stderr, flush=True)


def default_runtime_dir():
    if os.environ.get("JOBWIRE_RUNTIME_DIR"):
        return os.environ["JOBWIRE_RUNTIME_DIR"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "jobwire")
    return "/tmp/jobwire-%d" % os.getuid()


class Job:
    """The one job in progress: counted a step at a time so that the
    worker keeps answering the broker (heartbeats, cancel) meanwhile."""

    def __init__(self, msg):
        self.id = msg["id"]
        self.attempt = msg.get("attempt", 0)
        params = msg.get("params") or {}
        self.text = params.get("text", "")
        self.delay = max(0, params.get("delay_ms", 0)) / 1000.0
        self.words = self.text.split()
        self.done = 0
        self.next_step = time.monotonic()

    def step(self):
        """Counts the next words; returns the progress member."""
        self.done = min(len(self.words), self.done + WORDS_PER_STEP)
        self.next_step = time.monotonic() + self.delay
        total = max(len(self.words), 1)
        return {"done": self.done, "total": len(self.words),
                "percent": round(100.0 * self.done / total, 1),
                "message": "%d of %d words" % (self.done, len(self.words))}

    def finished(self):
        return self.done >= len(self.words)

    def result(self):
        return {"words": len(self.words),
                "lines": len(self.text.splitlines()),
                "chars": len(self.text), "worker": "python"}


class Worker:
    def __init__(self, workers, events, name):
        self.name = name
        self.ctx = zmq.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        # Fail at once while no broker is there, rather than queue for a
        # broker that may come back much later; hello is repeated.
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)
        self.dealer.setsockopt(zmq.LINGER, 200)
        self.dealer.connect(workers)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 200)
        self.pub.connect(events)
        self.epoch = None
        self.awaiting_welcome = False
        self.hello_due = 0.0
        self.heartbeat_s = 1.0
        self.heartbeat_due = 0.0
        self.job = None
        self.ready_owed = False
        self.stopping = False

    # -- sending ----------------------------------------------------------

    def send(self, verb, body):
        try:
            self.dealer.send_multipart(
                [verb.encode(), json.dumps(body).encode()], zmq.DONTWAIT)
            return True
        except zmq.Again:
            return False

    def hello(self):
        self.awaiting_welcome = self.send(
            "hello", {"worker": self.name, "types": [TYPE],
                      "pid": os.getpid()})
        self.hello_due = time.monotonic() + (
            HELLO_RETRY_S if self.awaiting_welcome else 0.2)

    def ready(self):
        if not self.stopping:
            self.ready_owed = not self.send("ready", {})

    def event(self, kind, **members):
        body = {"job": self.job.id, "attempt": self.job.attempt,
                "type": kind}
        body.update(members)
        self.pub.send_multipart([self.job.id.encode(),
                                 json.dumps(body).encode()])

    def heartbeat(self):
        self.send("heartbeat",
                  {"job": self.job.id if self.job else None,
                   "attempt": self.job.attempt if self.job else 0})
        self.heartbeat_due = time.monotonic() + self.heartbeat_s
        if self.ready_owed and self.job is None and not self.awaiting_welcome:
            self.ready()

    # -- receiving --------------------------------------------------------

    def on_welcome(self, msg):
        epoch = msg.get("epoch")
        if not self.awaiting_welcome:
            # Not an answer to our hello: the broker does not know us
            # (it restarted, or it forgot us). Introduce ourselves again.
            log("unasked welcome epoch=%s, saying hello" % epoch)
            self.hello()
            return
        self.awaiting_welcome = False
        if epoch != self.epoch:
            log("connected to the broker epoch=%s" % epoch)
        self.epoch = epoch
        hb = msg.get("heartbeat_ms")
        if isinstance(hb, int) and 50 <= hb <= 600000:
            self.heartbeat_s = hb / 1000.0
        if self.job is None:
            self.ready()

    def on_job(self, msg):
        if self.job is not None or self.stopping:
            log("job %s not taken: busy or stopping" % msg.get("id"))
            return
        if msg.get("type") != TYPE["name"]:
            self.job = Job(msg)
            self.fail("unknown_type", "this worker does not run this type")
            return
        params = msg.get("params") or {}
        bad = (not isinstance(params.get("text"), str)
               or not isinstance(params.get("delay_ms", 0), int))
        self.job = Job(msg if not bad else dict(msg, params={}))
        log("job started id=%s attempt=%s" % (self.job.id, self.job.attempt))
        self.event("started")
        if bad:
            self.fail("invalid_params",
                      "params.text must be a string, delay_ms an integer")

    def on_cancel(self, msg):
        if (self.job is None or msg.get("job") != self.job.id
                or msg.get("attempt") != self.job.attempt):
            return
        if msg.get("reason") != "timeout":
            self.event("cancelled", error={"code": "cancelled",
                                           "message": "cancelled on request"})
        log("job cancelled id=%s" % self.job.id)
        self.job = None
        self.ready()

    def fail(self, code, message):
        self.event("failed", error={"code": code, "message": message})
        self.job = None
        self.ready()

    def receive(self):
        while True:
            try:
                frames = self.dealer.recv_multipart(zmq.DONTWAIT)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue
            try:
                verb = frames[0].decode()
                msg = json.loads(frames[1])
            except (UnicodeDecodeError, ValueError):
                continue
            if not isinstance(msg, dict):
                continue
            handler = {"welcome": self.on_welcome, "job": self.on_job,
                       "cancel": self.on_cancel}.get(verb)
            if handler:
                handler(msg)

    # -- the loop ---------------------------------------------------------

    def work(self):
        if self.job is None or time.monotonic() < self.job.next_step:
            return
        progress = self.job.step()
        self.event("progress", progress=progress)
        if self.job.finished():
            self.event("succeeded", result=self.job.result())
            log("job succeeded id=%s" % self.job.id)
            self.job = None
            self.ready()

    def run(self):
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        self.hello()
        self.heartbeat_due = time.monotonic() + self.heartbeat_s
        while not self.stopping:
            now = time.monotonic()
            due = min(self.heartbeat_due, now + 0.1)
            if self.job is not None:
                due = min(due, self.job.next_step)
            if self.awaiting_welcome or self.epoch is None:
                due = min(due, self.hello_due)
            poller.poll(max(0, int((due - now) * 1000)))
            self.receive()
            now = time.monotonic()
            if now >= self.hello_due and (self.awaiting_welcome
                                          or self.epoch is None):
                self.hello()
            if now >= self.heartbeat_due:
                self.heartbeat()
            self.work()
        self.close()

    def close(self):
        bye = {}
        if self.job is not None:
            # The broker requeues it without counting a failed attempt.
            bye["handback"] = {"job": self.job.id,
                               "attempt": self.job.attempt}
        self.send("bye", bye)
        self.dealer.close()
        self.pub.close()
        self.ctx.term()
        log("stopped")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runtime-dir", default=default_runtime_dir())
    parser.add_argument("--workers", help="the broker's workers endpoint")
    parser.add_argument("--worker-events",
                        help="the broker's worker-events endpoint")
    parser.add_argument("--name", default="%s-py%d" % (socket.gethostname(),
                                                       os.getpid()))
    args = parser.parse_args()
    workers = args.workers or "ipc://" + os.path.join(args.runtime_dir,
                                                      "workers")
    events = args.worker_events or "ipc://" + os.path.join(
        args.runtime_dir, "worker-events")

    worker = Worker(workers, events, args.name)

    def stop(signum, frame):
        worker.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("started name=%s workers=%s" % (args.name, workers))
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
