"""Transactions with confluent-kafka (librdkafka), for compat-tests/tests/transaction_clients.rs.
One program, five commands; every command exits 1 with "FAIL why" on stderr if anything fails
or its --timeout (whole run) passes.

    txn_confluent.py create  --bootstrap H:P --topics T[,T...] --partitions P
    txn_confluent.py seed    --bootstrap H:P --topic T --records N
    txn_confluent.py produce --bootstrap H:P --topic T --transactions N --records R --transactional-id ID
    txn_confluent.py consume --bootstrap H:P --topic T --isolation read_committed|read_uncommitted --expect N
    txn_confluent.py etl     --bootstrap H:P --input T --output T --group G --transactional-id ID --batch B
    txn_confluent.py offsets --bootstrap H:P --topic T --group G

seed:    idempotent producer (acks=all), record i is key k<i>, value in-<i>, partition i % P.
produce: N transactions of R records, committing all but every third (i % 3 == 2), which is
         flushed (so its records are in the log) and then aborted. Record j of transaction i
         has key k<j>, value t<i>-r<j>, partition j % P. Prints "committed <i>" / "aborted <i>"
         once the transaction has ended.
consume: assigns every partition from the beginning (no group), prints "R <partition> <offset>
         <value>" per record; ends with "END <count>" once at least --expect records were read
         and every partition reported EOF (librdkafka's EOF is the last stable offset under
         read_committed, the high watermark otherwise).
etl:     consume-transform-produce as in confluent-kafka's eos example: one group member reads
         --input (read_committed, no auto commit), writes value x-<value> (same key, same
         partition) to --output, send_offsets_to_transaction, then commits the transaction,
         or aborts every third one (flushed first) and rewinds the consumer to the group's
         committed offsets. Ends once the committed positions equal --input's end offsets
         (taken at the start: seed first). Prints "committed <i> <records>" / "aborted <i>
         <records>" per transaction, then "DONE <committed txns> <aborted txns>".
offsets: prints "C <partition> <committed offset>" (the group's committed offset, -1001 if
         none) and "H <partition> <high watermark>" for every partition of --topic.
"""
import argparse
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fail(why):
    sys.stdout.flush()
    sys.stderr.write(f"FAIL {why}\n")
    sys.stderr.flush()
    sys.exit(1)


class Clock:
    """The whole run's deadline: every blocking call gets what is left of it."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds

    def left(self, cap=None):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            fail("timeout")
        return remaining if cap is None else min(cap, remaining)


def partition_count(client, topic, clock):
    md = client.list_topics(topic, timeout=clock.left(30))
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        fail(f"no metadata for {topic}: {None if t is None else t.error}")
    return len(t.partitions)


def error_cb(err):
    # librdkafka reports transient connection trouble here and recovers; only fatal errors
    # end the run (they also surface from the transactional calls themselves).
    if err.fatal():
        fail(f"fatal client error: {err}")
    sys.stderr.write(f"client error: {err}\n")


def cmd_create(args, clock):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topics = [NewTopic(t, args.partitions, 1) for t in args.topics.split(",")]
    for name, fut in admin.create_topics(topics, request_timeout=clock.left(30)).items():
        try:
            fut.result(timeout=clock.left())
        except Exception as e:  # noqa: BLE001 - report any admin error
            fail(f"create {name}: {e}")
    say("CREATED")


def cmd_seed(args, clock):
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                         "enable.idempotence": True, "error_cb": error_cb})
    parts = partition_count(producer, args.topic, clock)
    errors = []
    acked = [0]

    def on_ack(err, _msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    for i in range(args.records):
        while True:
            try:
                producer.produce(args.topic, key=f"k{i}", value=f"in-{i}", partition=i % parts,
                                 on_delivery=on_ack)
                break
            except BufferError:
                producer.poll(0.1)
                clock.left()
    while producer.flush(1.0) > 0:
        clock.left()
    if errors or acked[0] != args.records:
        fail(f"seed: {acked[0]} of {args.records} acked; errors {errors[:5]}")
    say(f"SEEDED {args.records}")


def transactional_producer(args):
    return Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.transactional_id,
        "acks": "all",
        "enable.idempotence": True,
        "transaction.timeout.ms": 60000,
        "error_cb": error_cb,
    })


def end_transaction(producer, abort, clock):
    """Commits, or flushes and aborts, the open transaction; raises KafkaException on failure."""
    if abort:
        # abort_transaction purges what is not sent yet: flush first, so the aborted records
        # are in the log (a read_uncommitted consumer must see them).
        while producer.flush(1.0) > 0:
            clock.left()
        producer.abort_transaction(clock.left(60))
    else:
        producer.commit_transaction(clock.left(60))


def cmd_produce(args, clock):
    producer = transactional_producer(args)
    parts = partition_count(producer, args.topic, clock)
    errors = []

    def on_ack(err, msg):
        if err is not None:
            errors.append(f"{msg.value()}: {err}")

    try:
        producer.init_transactions(clock.left(60))
        for i in range(args.transactions):
            producer.begin_transaction()
            for j in range(args.records):
                while True:
                    try:
                        producer.produce(args.topic, key=f"k{j}", value=f"t{i}-r{j}",
                                         partition=j % parts, on_delivery=on_ack)
                        break
                    except BufferError:
                        producer.poll(0.1)
                        clock.left()
            abort = i % 3 == 2
            end_transaction(producer, abort, clock)
            if errors:
                fail(f"transaction {i}: delivery errors {errors[:5]}")
            say(f"{'aborted' if abort else 'committed'} {i}")
    except Exception as e:  # noqa: BLE001 - any client error fails the run
        fail(f"{type(e).__name__}: {e}")


def cmd_consume(args, clock):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "unused-txn-consume",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": args.isolation,
        "error_cb": error_cb,
    })
    parts = partition_count(consumer, args.topic, clock)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(parts)])
    count = 0
    at_eof = set()
    while count < args.expect or len(at_eof) < parts:
        clock.left()
        for m in consumer.consume(num_messages=1000, timeout=0.2):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_eof.add(m.partition())
                    continue
                fail(f"consume: {err}")
            at_eof.discard(m.partition())
            say(f"R {m.partition()} {m.offset()} {m.value().decode()}")
            count += 1
    consumer.close()
    say(f"END {count}")


def cmd_etl(args, clock):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 10000,
        "error_cb": error_cb,
    })
    producer = transactional_producer(args)
    parts = partition_count(consumer, args.input, clock)
    ends = {}
    for p in range(parts):
        _low, high = consumer.get_watermark_offsets(TopicPartition(args.input, p),
                                                    timeout=clock.left(30), cached=False)
        ends[p] = high
    errors = []

    def on_ack(err, msg):
        if err is not None:
            errors.append(f"{msg.value()}: {err}")

    consumer.subscribe([args.input])
    # The next offset to process per partition as the application sees it: the message after
    # the last one consumed, or after an abort the group's committed offset.
    position = {}
    committed = {p: 0 for p in range(parts)}  # what the last committed transaction stored
    txn = 0
    aborted = 0

    def rewind():
        tps = consumer.committed(consumer.assignment(), timeout=clock.left(30))
        for tp in tps:
            if tp.error is not None:
                fail(f"committed() {tp}: {tp.error}")
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
                position.pop(tp.partition, None)
            else:
                position[tp.partition] = tp.offset
            consumer.seek(tp)

    try:
        producer.init_transactions(clock.left(60))
        producer.begin_transaction()
        while committed != ends:
            clock.left()
            msgs = consumer.consume(num_messages=args.batch, timeout=0.5)
            n = 0
            for m in msgs:
                if m.error() is not None:
                    fail(f"consume: {m.error()}")
                p = m.partition()
                expect = position.get(p, 0)
                if m.offset() != expect:
                    fail(f"input partition {p}: got offset {m.offset()}, expected {expect} "
                         f"(the next after the last one processed or the committed offset)")
                producer.produce(args.output, key=m.key(), value=b"x-" + m.value(), partition=p,
                                 on_delivery=on_ack)
                position[p] = m.offset() + 1
                n += 1
            if n == 0:
                continue
            offsets = [TopicPartition(args.input, p, o) for p, o in sorted(position.items())]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(),
                                                 clock.left(60))
            abort = txn % 3 == 2
            end_transaction(producer, abort, clock)
            if errors:
                fail(f"transaction {txn}: delivery errors {errors[:5]}")
            if abort:
                aborted += 1
                say(f"aborted {txn} {n}")
                rewind()
            else:
                committed.update(position)
                say(f"committed {txn} {n}")
            txn += 1
            producer.begin_transaction()
        # the last begin_transaction opened nothing on the broker (no records, no offsets)
        producer.abort_transaction(clock.left(30))
    except Exception as e:  # noqa: BLE001 - any client error fails the run
        fail(f"transaction {txn}: {type(e).__name__}: {e}")
    consumer.close()
    say(f"DONE {txn - aborted} {aborted}")


def cmd_offsets(args, clock):
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "error_cb": error_cb})
    parts = partition_count(consumer, args.topic, clock)
    tps = [TopicPartition(args.topic, p) for p in range(parts)]
    for tp in consumer.committed(tps, timeout=clock.left(30)):
        if tp.error is not None:
            fail(f"committed() {tp}: {tp.error}")
        say(f"C {tp.partition} {tp.offset}")
    for tp in tps:
        _low, high = consumer.get_watermark_offsets(tp, timeout=clock.left(30), cached=False)
        say(f"H {tp.partition} {high}")
    consumer.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["create", "seed", "produce", "consume", "etl", "offsets"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--topic")
    ap.add_argument("--topics")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--records", type=int)
    ap.add_argument("--transactions", type=int)
    ap.add_argument("--transactional-id")
    ap.add_argument("--isolation", choices=["read_committed", "read_uncommitted"])
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--group")
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    clock = Clock(args.timeout)
    {"create": cmd_create, "seed": cmd_seed, "produce": cmd_produce, "consume": cmd_consume,
     "etl": cmd_etl, "offsets": cmd_offsets}[args.command](args, clock)


if __name__ == "__main__":
    main()
