"""Roundtrip with kafka-python: admin create topic, produce M records with acks=all, consume
them back by explicit assignment, check every record came back exactly once, unchanged, at
its acked offset.

    roundtrip_kafka_python.py --bootstrap HOST:PORT --topic NAME --partitions N --messages M [--timeout S]
"""
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from roundtrip_common import Checker, fail, make_value, parse_args, run


def main():
    args = parse_args()
    deadline = time.monotonic() + args.timeout

    def left():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail("timeout")
        return remaining

    # (a) create the topic
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(args.topic, args.partitions, 1)], timeout_ms=int(left() * 1000))
    admin.close()

    # (b) produce, remembering where each record landed
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    futures = []
    for i in range(args.messages):
        key, value = f"k-{i}".encode(), make_value(i)
        futures.append((i, key, value, producer.send(args.topic, key=key, value=value,
                                                     headers=[("idx", str(i).encode())])))
    producer.flush(timeout=left())
    sent = {}
    for i, key, value, fut in futures:
        try:
            md = fut.get(timeout=left())
        except Exception as e:  # noqa: BLE001 - report any produce error
            fail(f"produce idx {i}: {e!r}")
        sent[i] = (key, value, md.partition, md.offset)
    producer.close(timeout=left())

    # (c) consume every partition from the beginning, no group
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    checker = Checker(sent)
    while checker.received < args.messages:
        batches = consumer.poll(timeout_ms=int(min(0.5, left()) * 1000), max_records=1000)
        for records in batches.values():
            for r in records:
                idx = dict(r.headers or []).get("idx")
                checker.check(r.key, r.value, idx, r.partition, r.offset)
    consumer.close()
    checker.finish()  # (d) report


if __name__ == "__main__":
    run(main)
