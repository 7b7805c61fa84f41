"""Produces numbered records with acks=all and idempotence (confluent-kafka), printing one
line per acknowledged record, flushed at once, so a test can kill the broker mid-stream and
later check that every acknowledged record survived:

    ACK <partition> <offset> <value>

    ack_producer.py --bootstrap HOST:PORT --topic NAME --messages M [--timeout S]
"""
import argparse
import sys
import time

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "message.timeout.ms": int(args.timeout * 1000),
        "reconnect.backoff.max.ms": 200,
    })

    def on_ack(err, msg):
        if err is None:
            print(f"ACK {msg.partition()} {msg.offset()} {msg.value().decode()}", flush=True)
        else:
            print(f"NACK {err}", file=sys.stderr, flush=True)

    for i in range(args.messages):
        while True:
            try:
                producer.produce(args.topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=on_ack)
                break
            except BufferError:
                producer.poll(0.05)
            if time.monotonic() > deadline:
                sys.exit("timeout while producing")
        producer.poll(0)
        if i % 200 == 0:
            # Keep a steady stream rather than one burst, so a kill lands mid-stream.
            time.sleep(0.01)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    print(f"DONE unacked={remaining}", flush=True)


if __name__ == "__main__":
    main()
