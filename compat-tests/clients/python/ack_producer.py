"""Produces numbered records with acks=all and idempotence (confluent-kafka), printing one
line per acknowledged record, flushed at once, so a test can kill the broker mid-stream and
later check that every acknowledged record survived:

    ACK <partition> <offset> <value>

    ack_producer.py --bootstrap HOST:PORT --topic NAME --messages M [--timeout S]
                    [--prefix P] [--rate N] [--stop-on-eof]

Values are <prefix><i> for i = 0, 1, ... in send order (prefix "v" by default); --rate
paces the sends to about N records a second; --stop-on-eof stops sending once stdin closes
(then flushes and prints DONE as usual).
"""
import argparse
import sys
import threading
import time

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--prefix", default="v")
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--stop-on-eof", action="store_true")
    # acks=1 or 0 turn idempotence off, which only acks=all allows.
    ap.add_argument("--acks", default="all", choices=["all", "1", "0"])
    args = ap.parse_args()
    start = time.monotonic()
    deadline = start + args.timeout
    stop = threading.Event()
    if args.stop_on_eof:
        def wait_eof():
            sys.stdin.read()
            stop.set()
        threading.Thread(target=wait_eof, daemon=True).start()

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "enable.idempotence": args.acks == "all",
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
        if stop.is_set():
            break
        if args.rate > 0:
            ahead = start + i / args.rate - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
        while True:
            try:
                producer.produce(args.topic, key=f"k{i}".encode(), value=f"{args.prefix}{i}".encode(), on_delivery=on_ack)
                break
            except BufferError:
                producer.poll(0.05)
            if time.monotonic() > deadline:
                sys.exit("timeout while producing")
        producer.poll(0)
        if i % 200 == 0 and args.rate <= 0:
            # Keep a steady stream rather than one burst, so a kill lands mid-stream.
            time.sleep(0.01)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    print(f"DONE unacked={remaining}", flush=True)


if __name__ == "__main__":
    main()
