// A consumer-group member (kafkajs) for group tests: subscribes, prints every record it
// processes, commits each batch's offsets before taking the next. Runs until --seconds
// elapse or SIGTERM/SIGINT, then disconnects (leaving the group).
//
//   node group.js --bootstrap H:P --topic T --group G [--seconds S]
//
// Output lines (flushed each): "ASSIGNED p,p,", "R partition offset value", "COMMITTED",
// "COMMIT_FAILED why", "POLL_FAILED why", "CLOSED".
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const args = { seconds: '120' };
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.bootstrap || !args.topic || !args.group) {
  console.error('usage: group.js --bootstrap H:P --topic T --group G [--seconds S]');
  process.exit(2);
}
const say = (line) => process.stdout.write(line + '\n');

async function main() {
  const kafka = new Kafka({ clientId: 'sluice-group', brokers: [args.bootstrap], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: args.group, sessionTimeout: 10000, heartbeatInterval: 1000 });
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    try {
      await consumer.disconnect();
    } finally {
      say('CLOSED');
      process.exit(0);
    }
  };
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, close);
  setTimeout(close, Number(args.seconds) * 1000);

  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const parts = (e.payload.memberAssignment[args.topic] || []).map((p) => `${p},`).join('');
    say(`ASSIGNED ${parts}`);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, heartbeat }) => {
      for (const m of batch.messages) say(`R ${batch.partition} ${m.offset} ${m.value.toString()}`);
      if (batch.messages.length === 0) return;
      const next = (BigInt(batch.lastOffset()) + 1n).toString();
      try {
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
        say('COMMITTED');
      } catch (e) {
        say(`COMMIT_FAILED ${e.message}`);
      }
      await heartbeat();
    },
  });
}

main().catch((e) => {
  say(`POLL_FAILED ${e.message}`);
  process.exit(1);
});
