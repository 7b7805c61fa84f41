"""A consumer-group member (confluent-kafka / librdkafka) for group tests: subscribes, prints
every record it processes, then commits synchronously after each non-empty poll. Runs until
--seconds elapse or SIGTERM/SIGINT, then closes the consumer (leaving the group).

    group_confluent.py --bootstrap H:P --topic T --group G [--seconds S]

Output lines (flushed each): "ASSIGNED p,p,", "R partition offset value", "COMMITTED",
"COMMIT_FAILED why", "POLL_FAILED why".
"""
import argparse
import signal
import sys
import time

from confluent_kafka import Consumer


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--seconds", type=float, default=120)
    args = ap.parse_args()
    deadline = time.monotonic() + args.seconds
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
    })

    def on_assign(_consumer, parts):
        say("ASSIGNED " + "".join(f"{p.partition}," for p in parts))

    consumer.subscribe([args.topic], on_assign=on_assign)
    try:
        while not stop and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=500, timeout=0.2)
            processed = 0
            for m in msgs:
                if m.error():
                    say(f"POLL_FAILED {m.error()}")
                    continue
                say(f"R {m.partition()} {m.offset()} {m.value().decode()}")
                processed += 1
            if processed:
                try:
                    consumer.commit(asynchronous=False)
                    say("COMMITTED")
                except Exception as e:  # noqa: BLE001 - report any commit error
                    say(f"COMMIT_FAILED {e}")
    finally:
        consumer.close()
        say("CLOSED")


if __name__ == "__main__":
    main()
