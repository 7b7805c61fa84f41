// Roundtrip with kafkajs: admin create topic, produce M records with acks=all, consume them
// back, check every record came back exactly once, unchanged, at its acked offset.
//
//   node roundtrip.js --bootstrap HOST:PORT --topic NAME --partitions N --messages M [--timeout S]
//     [--security-protocol SSL|SASL_SSL|SASL_PLAINTEXT] [--sasl-mechanism PLAIN|SCRAM-SHA-256|
//      SCRAM-SHA-512 --username U --password P] [--ca-file PEM] [--cert-file PEM --key-file PEM]
//
// kafkajs has no assign(): its consumer always joins a group. This one uses a fresh group
// (roundtrip-<topic>, -<pid>), subscribes from the beginning and never commits.
'use strict';
const fs = require('fs');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

const args = { timeout: '90' };
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.bootstrap || !args.topic || !args.partitions || !args.messages) {
  console.error('usage: roundtrip.js --bootstrap H:P --topic T --partitions N --messages M [--timeout S]');
  process.exit(2);
}
const topic = args.topic;
const partitions = Number(args.partitions);
const messages = Number(args.messages);
setTimeout(() => fail('timeout'), Number(args.timeout) * 1000);

const PRINTABLE = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join('');
const randomPrintable = (n) => Array.from({ length: n }, () => PRINTABLE[Math.floor(Math.random() * 94)]).join('');

// kafkajs's ssl and sasl options from the Kafka-style flags.
function security() {
  const protocol = args['security-protocol'] || 'PLAINTEXT';
  const options = {};
  if (protocol.endsWith('SSL')) {
    options.ssl = { rejectUnauthorized: true };
    if (args['ca-file']) options.ssl.ca = [fs.readFileSync(args['ca-file'], 'utf8')];
    if (args['cert-file']) options.ssl.cert = fs.readFileSync(args['cert-file'], 'utf8');
    if (args['key-file']) options.ssl.key = fs.readFileSync(args['key-file'], 'utf8');
  }
  if (protocol.startsWith('SASL')) {
    options.sasl = { mechanism: args['sasl-mechanism'].toLowerCase(), username: args.username, password: args.password };
  }
  return options;
}

async function main() {
  const kafka = new Kafka({ clientId: 'sluice-roundtrip', brokers: [args.bootstrap], logLevel: logLevel.WARN, ...security() });

  // (a) create the topic
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  if (!created) fail(`topic ${topic} already exists`);
  await admin.disconnect();

  // (b) produce in chunks, remembering where each record landed. The library's own
  // partitioner picks each partition; a chunk's records for one partition form one batch,
  // in order, so record j of that batch sits at baseOffset + j.
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, p) => ({ partitionId: p, leader: 0 }));
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const sent = [];
  for (let start = 0; start < messages; start += 500) {
    const chunk = [];
    for (let i = start; i < Math.min(messages, start + 500); i++) {
      const msg = { key: `k-${i}`, value: `v-${i}-${randomPrintable(100)}`, headers: { idx: String(i) } };
      msg.partition = partitioner({ topic, partitionMetadata, message: msg });
      sent[i] = msg;
      chunk.push(msg);
    }
    const acks = await producer.send({ topic, acks: -1, messages: chunk });
    for (const ack of acks) {
      if (ack.errorCode !== 0) fail(`produce to partition ${ack.partition}: error ${ack.errorCode}`);
      let offset = BigInt(ack.baseOffset);
      for (const msg of chunk) if (msg.partition === ack.partition) msg.offset = offset++;
    }
  }
  for (let i = 0; i < messages; i++) if (sent[i].offset === undefined) fail(`idx ${i} was not acked`);
  await producer.disconnect();

  // (c) consume everything from the beginning
  const seen = new Set();
  const lastOffset = new Map();
  const diffs = [];
  let received = 0;
  const consumer = kafka.consumer({ groupId: `roundtrip-${topic}-${process.pid}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await new Promise((resolve) => {
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message: r }) => {
        // (d) check it
        received++;
        const offset = BigInt(r.offset);
        const where = `p${partition}@${offset}`;
        if (lastOffset.has(partition) && offset <= lastOffset.get(partition)) {
          diffs.push(`${where}: offset not increasing (previous ${lastOffset.get(partition)})`);
        }
        lastOffset.set(partition, offset);
        const idx = r.headers && r.headers.idx !== undefined ? r.headers.idx.toString() : undefined;
        const i = Number(idx);
        if (!/^\d+$/.test(idx || '') || i >= messages) {
          diffs.push(`${where}: bad idx header ${idx}`);
        } else if (seen.has(i)) {
          diffs.push(`${where}: duplicate record idx ${i}`);
        } else {
          seen.add(i);
          const s = sent[i];
          if (String(r.key) !== s.key) diffs.push(`${where}: key ${r.key} != ${s.key}`);
          if (String(r.value) !== s.value) diffs.push(`${where}: value differs for idx ${i}`);
          if (partition !== s.partition || offset !== s.offset) {
            diffs.push(`${where}: idx ${i} was acked at p${s.partition}@${s.offset}`);
          }
        }
        if (received >= messages) resolve();
      },
    });
  });
  await consumer.disconnect();

  if (seen.size !== messages) diffs.push(`received ${seen.size} distinct of ${messages}`);
  diffs.slice(0, 20).forEach((d) => console.log(`DIFF ${d}`));
  if (diffs.length) fail(`${diffs.length} difference(s)`);
  console.log(`OK ${messages}`);
  process.exit(0);
}

main().catch((e) => fail(e.stack || e));
