"""The writes of issue 16's compaction report, against one broker: a `ttl` topic with short
retention beside a compacted `kv` topic (3,000 records over 10 keys, then 10 more); prints how
many `kv` records a consumer reads back after the first 3,000 and after the 10 more.

    compaction_compare.py --bootstrap HOST:PORT
"""
import argparse
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def read_back(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("kv", 0, 0)])
    high = c.get_watermark_offsets(TopicPartition("kv", 0), cached=False)[1]
    n = 0
    while True:
        m = c.poll(2)
        if m is None:
            break
        n += 1
        if m.offset() >= high - 1:
            break
    c.close()
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    bs = ap.parse_args().bootstrap
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([
        NewTopic("ttl", 1, 1, config={"retention.ms": "3000", "segment.ms": "500"}),
        NewTopic("kv", 1, 1, config={"cleanup.policy": "compact", "segment.ms": "500",
                                     "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "500"}),
    ]).values():
        f.result()
    p = Producer({"bootstrap.servers": bs})
    for _ in range(1000):
        p.produce("ttl", value=b"old")
    for i in range(3000):
        p.produce("kv", key=f"k{i % 10}".encode(), value=f"{i}".encode())
    p.flush(30)
    time.sleep(5)
    print(f"kv after 3,000 records and 5 s: {read_back(bs)}")
    for _ in range(10):
        p.produce("ttl", value=b"new")
    for i in range(3000, 3010):
        p.produce("kv", key=f"k{i % 10}".encode(), value=f"{i}".encode())
    p.flush(30)
    c = Consumer({"bootstrap.servers": bs, "group.id": "watch"})
    deadline = time.time() + 120
    while c.get_watermark_offsets(TopicPartition("ttl", 0), cached=False)[0] < 1000 and time.time() < deadline:
        time.sleep(0.5)
    c.close()
    time.sleep(5)
    print(f"kv after 10 more, ttl expired and 5 s: {read_back(bs)}")


if __name__ == "__main__":
    main()
