"""Roundtrip with kafka-python: admin create topic, produce M records with acks=all, consume
them back by explicit assignment, check every record came back exactly once, unchanged, at
its acked offset.

    roundtrip_kafka_python.py --bootstrap HOST:PORT --topic NAME --partitions N --messages M [--timeout S]
        [--security-protocol SASL_SSL|SSL|SASL_PLAINTEXT] [--sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512
         --username U --password P] [--ca-file CA.pem] [--cert-file CERT.pem --key-file KEY.pem]
"""
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from roundtrip_common import Checker, fail, make_value, parse_args, run


def add_security_args(p):
    p.add_argument("--security-protocol", default="PLAINTEXT")
    p.add_argument("--sasl-mechanism")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--ca-file", help="PEM CA certificates to trust (SSL, SASL_SSL)")
    p.add_argument("--cert-file", help="PEM client certificate (mutual TLS)")
    p.add_argument("--key-file", help="PEM client private key (mutual TLS)")


def security(args):
    """kafka-python's connection options for the security arguments."""
    opts = {"security_protocol": args.security_protocol}
    if args.sasl_mechanism:
        opts.update(sasl_mechanism=args.sasl_mechanism, sasl_plain_username=args.username,
                    sasl_plain_password=args.password)
    if args.ca_file:
        opts["ssl_cafile"] = args.ca_file
    if args.cert_file:
        opts.update(ssl_certfile=args.cert_file, ssl_keyfile=args.key_file)
    return opts


def main():
    args = parse_args(add_security_args)
    conn = security(args)
    deadline = time.monotonic() + args.timeout

    def left():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail("timeout")
        return remaining

    # (a) create the topic
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, **conn)
    admin.create_topics([NewTopic(args.topic, args.partitions, 1)], timeout_ms=int(left() * 1000))
    admin.close()

    # (b) produce, remembering where each record landed
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", **conn)
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
                             enable_auto_commit=False, auto_offset_reset="earliest", **conn)
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
