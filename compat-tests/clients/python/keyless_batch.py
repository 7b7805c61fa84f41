"""Produces one batch of keyed and keyless records to a compacted topic (confluent-kafka) and
prints each record's outcome, "KEY ERROR_NAME" ("-" for no key, "OK" for success): a broker
that names the keyless records in `record_errors` (KIP-467) fails only those as
INVALID_RECORD, and librdkafka fails their keyed batch-mates with _INVALID_DIFFERENT_RECORD.

    keyless_batch.py --bootstrap HOST:PORT --topic NAME
"""
import argparse

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    args = ap.parse_args()
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 200, "message.send.max.retries": 0})
    outcomes = []

    def report(err, msg):
        key = msg.key().decode() if msg.key() else "-"
        outcomes.append(f"{key} {err.name() if err else 'OK'}")

    # Two keyless records: with a single one, librdkafka reports the partition's error for
    # every record of the batch.
    for key, value in [(b"k1", b"a"), (None, b"b"), (b"k2", b"c"), (None, b"d")]:
        producer.produce(args.topic, key=key, value=value, partition=0, on_delivery=report)
    producer.flush(30)
    print("\n".join(outcomes))


if __name__ == "__main__":
    main()
