"""Roundtrip with confluent-kafka (librdkafka): admin create topic, produce M records with
acks=all, consume them back by explicit assignment, check every record came back exactly
once, unchanged, at its acked offset.

    roundtrip_confluent.py --bootstrap HOST:PORT --topic NAME --partitions N --messages M [--timeout S]
        [-X KEY=VALUE ...]

-X sets a librdkafka property on every client, as kcat's -X does (e.g. -X security.protocol=SASL_SSL
-X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=U -X sasl.password=P -X ssl.ca.location=CA.pem).
"""
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from roundtrip_common import Checker, fail, make_value, parse_args, run


def add_property_args(p):
    p.add_argument("-X", dest="props", action="append", default=[], metavar="KEY=VALUE",
                   help="librdkafka property for every client (repeatable)")


def main():
    args = parse_args(add_property_args)
    props = dict(kv.split("=", 1) for kv in args.props)
    deadline = time.monotonic() + args.timeout

    def left():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail("timeout")
        return remaining

    # (a) create the topic
    admin = AdminClient({"bootstrap.servers": args.bootstrap, **props})
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)], request_timeout=left())
    futures[args.topic].result(timeout=left())

    # (b) produce, remembering where each record landed
    sent = {}  # idx -> (key, value, partition, offset)
    errors = []

    def on_ack(i, err, msg):  # delivery reports carry no headers: bind idx instead
        if err is not None:
            errors.append(f"produce idx {i}: {err}")
        else:
            sent[i] = (msg.key(), msg.value(), msg.partition(), msg.offset())

    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", **props})
    for i in range(args.messages):
        while True:
            try:
                producer.produce(args.topic, key=f"k-{i}".encode(), value=make_value(i),
                                 headers=[("idx", str(i).encode())], on_delivery=lambda err, msg, i=i: on_ack(i, err, msg))
                break
            except BufferError:  # local queue full: serve delivery reports and retry
                producer.poll(0.1)
                left()
    while producer.flush(1.0) > 0:
        left()
    if errors or len(sent) != args.messages:
        fail("; ".join(errors[:10] or [f"only {len(sent)} acks"]))

    # (c) consume every partition from the beginning, no group
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "unused-roundtrip",
                         "enable.auto.commit": False, "enable.auto.offset.store": False, **props})
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(args.partitions)])
    checker = Checker(sent)
    while checker.received < args.messages:
        for msg in consumer.consume(num_messages=1000, timeout=min(0.5, left())):
            if msg.error():
                fail(f"consume: {msg.error()}")
            idx = dict(msg.headers() or []).get("idx")
            checker.check(msg.key(), msg.value(), idx, msg.partition(), msg.offset())
    consumer.close()
    checker.finish()  # (d) report


if __name__ == "__main__":
    run(main)
