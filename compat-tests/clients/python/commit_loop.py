"""Commits offsets 1..N for partition 0 of a topic, one synchronous commit each, as a group
member without subscription (confluent-kafka). Prints "OK N" once all are acknowledged.

Without --retry-for, the first failed commit fails the program (compaction tests check that
`__consumer_offsets` stays bounded and the last commit survives). With --retry-for SECONDS, a
failed commit is retried (the same offset) until that deadline, and "ACK i" is printed as
each commit is acknowledged, so a test moving the coordinator can follow progress and check
every acknowledged commit survives.

    commit_loop.py --bootstrap HOST:PORT --topic NAME --group G --commits N [--retry-for S]
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
    ap.add_argument("--retry-for", type=float)
    args = ap.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False})
    deadline = time.time() + (args.retry_for or 0)
    i = 1
    while i <= args.commits:
        try:
            consumer.commit(offsets=[TopicPartition(args.topic, 0, i)], asynchronous=False)
        except KafkaException as e:
            if args.retry_for is None or time.time() > deadline:
                raise
            print(f"commit {i} failed, retrying: {e}", file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        if args.retry_for is not None:
            print(f"ACK {i}", flush=True)
        i += 1
    consumer.close()
    print(f"OK {args.commits}")


if __name__ == "__main__":
    main()
