"""Asks a broker for metadata with confluent-kafka (librdkafka 2.x), like `kcat -L` but on a
librdkafka new enough for SCRAM against Kafka 4 (kcat's 2.0.2 repeats the client nonce in its
SCRAM client-final-message, which Kafka 4 refuses). Prints `OK brokers=N` and exits 0, or
prints `FAIL` with the errors librdkafka reported (authentication errors among them) and
exits 1.

    metadata_confluent.py -b HOST:PORT [-X KEY=VALUE ...] [--timeout S] [--oauth-token JWT]

With --oauth-token the client logs in with SASL OAUTHBEARER presenting that token.
"""
import argparse
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-b", "--bootstrap", required=True)
    p.add_argument("-X", dest="props", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--oauth-token")
    args = p.parse_args()
    errors = []
    config = {"bootstrap.servers": args.bootstrap, "error_cb": lambda e: errors.append(str(e))}
    config.update(kv.split("=", 1) for kv in args.props)
    if args.oauth_token:
        config["sasl.mechanisms"] = "OAUTHBEARER"
        config["oauth_cb"] = lambda _config: (args.oauth_token, time.time() + 300)
    admin = AdminClient(config)
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            metadata = admin.list_topics(timeout=1.0)
            break
        except KafkaException as e:
            admin.poll(0)  # serves error_cb
            if time.monotonic() > deadline or any("Authentication" in m for m in errors):
                print("FAIL " + " | ".join(errors + [str(e)]), flush=True)
                sys.exit(1)
    print(f"OK brokers={len(metadata.brokers)}", flush=True)

if __name__ == "__main__":
    main()
