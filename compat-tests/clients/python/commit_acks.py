"""Commits offsets 1..N for partition 0 of a topic, one synchronous commit each, as a group
member without subscription (confluent-kafka), through coordinator moves: a failed commit is
retried (the same offset) until acknowledged or the deadline passes. Prints "ACK i" for each
acknowledged commit, at once, so a test can follow progress and check every acknowledged
commit survives.

    commit_acks.py --bootstrap HOST:PORT --topic NAME --group G --commits N --timeout S
"""
import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--commits", type=int, required=True)
    ap.add_argument("--timeout", type=float, required=True)
    args = ap.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False})
    deadline = time.time() + args.timeout
    i = 1
    while i <= args.commits:
        if time.time() > deadline:
            print(f"deadline passed at commit {i}", file=sys.stderr)
            sys.exit(1)
        try:
            consumer.commit(offsets=[TopicPartition(args.topic, 0, i)], asynchronous=False)
        except KafkaException as e:
            print(f"commit {i} failed, retrying: {e}", file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        print(f"ACK {i}", flush=True)
        i += 1
    consumer.close()


if __name__ == "__main__":
    main()
