"""Commits offsets 1..N for partition 0 of a topic, one synchronous commit each, as a group
member without subscription (confluent-kafka). Used to check that `__consumer_offsets`
stays bounded and the last commit survives.

    commit_loop.py --bootstrap HOST:PORT --topic NAME --group G --commits N
"""
import argparse

from confluent_kafka import Consumer, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--commits", type=int, required=True)
    args = ap.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False})
    for i in range(1, args.commits + 1):
        consumer.commit(offsets=[TopicPartition(args.topic, 0, i)], asynchronous=False)
    consumer.close()
    print(f"OK {args.commits}")


if __name__ == "__main__":
    main()
