"""Shared by the Python roundtrip programs: arguments, record values and the final check."""
import argparse
import os
import random
import string
import sys
import threading
import traceback

PRINTABLE = string.ascii_letters + string.digits + string.punctuation


def parse_args(add_args=None):
    """The roundtrip arguments; add_args(parser) adds a client's own."""
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--timeout", type=float, default=90.0, help="seconds for the whole run")
    if add_args:
        add_args(p)
    args = p.parse_args()
    # Hard bound on the run time, even if a client call blocks.
    watchdog = threading.Timer(args.timeout + 5, lambda: (print("FAIL timeout (watchdog)", flush=True), os._exit(1)))
    watchdog.daemon = True
    watchdog.start()
    return args


def make_value(i):
    return f"v-{i}-".encode() + "".join(random.choices(PRINTABLE, k=100)).encode()


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


class Checker:
    """Checks consumed records against what was acked: sent[idx] = (key, value, partition, offset)."""

    def __init__(self, sent):
        self.sent = sent
        self.seen = set()
        self.last_offset = {}
        self.errors = []
        self.received = 0

    def check(self, key, value, idx, partition, offset):
        self.received += 1
        where = f"p{partition}@{offset}"
        prev = self.last_offset.get(partition)
        if prev is not None and offset <= prev:
            self.errors.append(f"{where}: offset not increasing (previous {prev})")
        self.last_offset[partition] = offset
        try:
            i = int(idx)
        except (TypeError, ValueError):
            self.errors.append(f"{where}: bad idx header {idx!r}")
            return
        if i not in self.sent:
            self.errors.append(f"{where}: idx out of range {i}")
        elif i in self.seen:
            self.errors.append(f"{where}: duplicate record idx {i}")
        else:
            self.seen.add(i)
            k, v, p, o = self.sent[i]
            if key != k:
                self.errors.append(f"{where}: key {key!r} != {k!r}")
            if value != v:
                self.errors.append(f"{where}: value differs for idx {i}")
            if (partition, offset) != (p, o):
                self.errors.append(f"{where}: idx {i} was acked at p{p}@{o}")

    def finish(self):
        if len(self.seen) != len(self.sent):
            self.errors.append(f"received {len(self.seen)} distinct of {len(self.sent)}")
        for e in self.errors[:20]:
            print(f"DIFF {e}")
        if self.errors:
            fail(f"{len(self.errors)} difference(s)")
        print(f"OK {len(self.sent)}", flush=True)


def run(main):
    """Runs main(); any exception is a failure, reported on one FAIL line (traceback on stderr)."""
    try:
        main()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        fail(repr(e))
