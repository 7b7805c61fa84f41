// Transactions with kafkajs, for compat-tests/tests/transaction_clients.rs. One program, four
// commands; each exits 1 with "FAIL why" on stderr if anything fails or its --timeout (whole
// run, seconds) passes.
//
//   node txn.js create  --bootstrap H:P --topics T[,T...] --partitions P
//   node txn.js produce --bootstrap H:P --topic T --transactions N --records R --transactional-id ID
//   node txn.js consume --bootstrap H:P --topic T --isolation read_committed|read_uncommitted --expect N
//   node txn.js etl     --bootstrap H:P --input T --output T --group G --transactional-id ID --batch B
//
// produce: a transactional producer (idempotent, maxInFlightRequests 1) runs N transactions of
//          R records, committing all but every third (i % 3 == 2), which it aborts; kafkajs
//          awaits each send, so the aborted records are in the log. Record j of transaction i
//          has key k<j>, value t<i>-r<j>, partition j % P. Prints "committed <i>" / "aborted <i>".
// consume: a consumer group of its own (fromBeginning) at the isolation level; prints "R
//          <partition> <offset> <value>" per record and "END <count>" once at least --expect
//          records were read and every partition's position reached the end offsets (as
//          ListOffsets answers them then).
// etl:     consume-transform-produce: one group member reads --input (read_committed, no
//          auto commit); per chunk of at most B records of a fetched batch it opens a
//          transaction, sends value x-<value> (same key, same partition) to --output,
//          sendOffsets the next input offset, and commits, or aborts every third transaction
//          and leaves the offset unresolved, so kafkajs fetches those records again. Ends once
//          the committed offsets equal --input's end offsets (taken at the start: seed first).
//          Prints "committed <i> <records>" / "aborted <i> <records>", then "DONE <committed>
//          <aborted>".
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const command = process.argv[2];
const args = { timeout: '60', partitions: '3', batch: '100', expect: '0' };
for (let i = 3; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const say = (line) => process.stdout.write(line + '\n');
const fail = (why) => {
  process.stderr.write(`FAIL ${why}\n`, () => process.exit(1));
  setTimeout(() => process.exit(1), 1000);
};
setTimeout(() => fail('timeout'), Number(args.timeout) * 1000).unref();

const kafka = new Kafka({ clientId: 'sluice-txn', brokers: [args.bootstrap], logLevel: logLevel.NOTHING });

function transactionalProducer() {
  return kafka.producer({
    transactionalId: args['transactional-id'],
    maxInFlightRequests: 1,
    idempotent: true,
    transactionTimeout: 60000,
  });
}

async function partitionCount(admin, topic) {
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  return md.topics[0].partitions.length;
}

// The end offset of each partition of `topic` (ListOffsets latest; kafkajs's admin asks
// read_committed, i.e. the last stable offset).
async function endOffsets(topic) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = {};
    for (const { partition, high } of await admin.fetchTopicOffsets(topic)) ends[partition] = BigInt(high);
    return ends;
  } finally {
    await admin.disconnect();
  }
}

async function create() {
  const admin = kafka.admin();
  await admin.connect();
  const topics = args.topics.split(',').map((topic) => ({ topic, numPartitions: Number(args.partitions), replicationFactor: 1 }));
  const created = await admin.createTopics({ topics, waitForLeaders: true });
  await admin.disconnect();
  if (!created) throw new Error(`topics ${args.topics} already existed`);
  say('CREATED');
}

async function produce() {
  const admin = kafka.admin();
  await admin.connect();
  const parts = await partitionCount(admin, args.topic);
  await admin.disconnect();
  const producer = transactionalProducer();
  await producer.connect();
  for (let i = 0; i < Number(args.transactions); i++) {
    const txn = await producer.transaction();
    const messages = [];
    for (let j = 0; j < Number(args.records); j++) messages.push({ key: `k${j}`, value: `t${i}-r${j}`, partition: j % parts });
    try {
      await txn.send({ topic: args.topic, messages });
    } catch (e) {
      throw new Error(`transaction ${i}: send: ${e.message}`);
    }
    if (i % 3 === 2) {
      await txn.abort();
      say(`aborted ${i}`);
    } else {
      await txn.commit();
      say(`committed ${i}`);
    }
  }
  await producer.disconnect();
}

async function consume() {
  const expect = Number(args.expect);
  const consumer = kafka.consumer({
    groupId: `txn-consume-${process.pid}-${Date.now()}`,
    readUncommitted: args.isolation === 'read_uncommitted',
  });
  const next = {}; // partition -> next offset to fetch (BigInt), control records included
  let count = 0;
  let finished = false;
  let done;
  const allDone = new Promise((resolve) => (done = resolve));
  let ends = null;
  let checking = false;
  const check = async () => {
    if (finished || checking || count < expect) return;
    checking = true;
    try {
      // Once enough records are in, the end offsets as they are now: the position must reach them.
      if (ends === null) ends = await endOffsets(args.topic);
      if (Object.entries(ends).every(([p, end]) => (next[p] ?? 0n) >= end)) {
        finished = true;
        done();
      }
    } finally {
      checking = false;
    }
  };
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    next[payload.partition] = BigInt(payload.lastOffset) + 1n;
    check().catch((e) => fail(`end offsets: ${e.message}`));
  });
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        say(`R ${batch.partition} ${m.offset} ${m.value.toString()}`);
        count++;
      }
    },
  });
  // An empty topic or partitions at their end already: nothing more comes to trigger a check.
  const poll = setInterval(() => check().catch((e) => fail(`end offsets: ${e.message}`)), 500);
  await allDone;
  clearInterval(poll);
  await consumer.disconnect();
  say(`END ${count}`);
}

async function etl() {
  const batchSize = Number(args.batch);
  const ends = await endOffsets(args.input);
  const committed = {};
  for (const p of Object.keys(ends)) committed[p] = 0n;
  const consumer = kafka.consumer({ groupId: args.group, sessionTimeout: 10000, heartbeatInterval: 1000 });
  const producer = transactionalProducer();
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: args.input, fromBeginning: true });
  let txnNo = 0;
  let aborted = 0;
  let finished = false;
  let done;
  let failed;
  const allDone = new Promise((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const p = batch.partition;
      try {
        for (let start = 0; start < batch.messages.length; start += batchSize) {
          if (finished || !isRunning() || isStale()) return;
          const chunk = batch.messages.slice(start, start + batchSize);
          const last = chunk[chunk.length - 1].offset;
          const first = BigInt(chunk[0].offset);
          if (first !== committed[p]) {
            throw new Error(`input partition ${p}: chunk starts at ${first}, committed offset is ${committed[p]}`);
          }
          const txn = await producer.transaction();
          await txn.send({
            topic: args.output,
            messages: chunk.map((m) => ({ key: m.key, value: `x-${m.value.toString()}`, partition: p })),
          });
          const nextOffset = BigInt(last) + 1n;
          await txn.sendOffsets({
            consumerGroupId: args.group,
            topics: [{ topic: batch.topic, partitions: [{ partition: p, offset: nextOffset.toString() }] }],
          });
          if (txnNo % 3 === 2) {
            await txn.abort();
            say(`aborted ${txnNo} ${chunk.length}`);
            txnNo++;
            aborted++;
            // Not resolved: kafkajs fetches this partition again from the committed offset.
            return;
          }
          await txn.commit();
          say(`committed ${txnNo} ${chunk.length}`);
          txnNo++;
          committed[p] = nextOffset;
          resolveOffset(last);
          await heartbeat();
          if (Object.entries(ends).every(([q, end]) => committed[q] >= end)) {
            finished = true;
            done();
            return;
          }
        }
      } catch (e) {
        finished = true;
        failed(e);
      }
    },
  });
  await allDone;
  await consumer.disconnect();
  await producer.disconnect();
  say(`DONE ${txnNo - aborted} ${aborted}`);
}

const commands = { create, produce, consume, etl };
if (!commands[command] || !args.bootstrap) {
  process.stderr.write('usage: txn.js create|produce|consume|etl --bootstrap H:P ...\n');
  process.exit(2);
}
commands[command]()
  .then(() => process.exit(0))
  .catch((e) => fail(`${command}: ${e.stack || e.message}`));
