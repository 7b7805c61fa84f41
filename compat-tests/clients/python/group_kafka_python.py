"""A consumer-group member (kafka-python) for group tests: subscribes, prints every record it
processes, then commits synchronously after each non-empty poll. Runs until --seconds elapse
or SIGTERM/SIGINT, then closes the consumer (leaving the group).

    group_kafka_python.py --bootstrap H:P --topic T --group G [--seconds S]

Output lines (flushed each): "ASSIGNED p,p,", "R partition offset value", "COMMITTED",
"COMMIT_FAILED why", "POLL_FAILED why".
"""
import argparse
import signal
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        say("ASSIGNED " + "".join(f"{tp.partition}," for tp in sorted(assigned)))


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

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    consumer.subscribe([args.topic], listener=Listener())
    try:
        while not stop and time.monotonic() < deadline:
            try:
                batches = consumer.poll(timeout_ms=200, max_records=500)
            except Exception as e:  # noqa: BLE001 - report and keep polling
                say(f"POLL_FAILED {e!r}")
                continue
            processed = 0
            for records in batches.values():
                for r in records:
                    say(f"R {r.partition} {r.offset} {r.value.decode()}")
                    processed += 1
            if processed:
                try:
                    consumer.commit()
                    say("COMMITTED")
                except Exception as e:  # noqa: BLE001 - report any commit error
                    say(f"COMMIT_FAILED {e!r}")
    finally:
        consumer.close()
        say("CLOSED")


if __name__ == "__main__":
    main()
