// Kafka Streams word count with processing.guarantee=exactly_once_v2: splits each input line
// on whitespace, repartitions by word (internal repartition topic), counts each word in a
// RocksDB store backed by a changelog topic (record cache off, so every increment goes
// downstream) and writes each new count to the output topic as key <word>, value
// "<word> <count>". Internal topics get replication.factor=R (default 3) and
// min.insync.replicas=min(2, R).
//
//   java EosWordCount --bootstrap H:P --input T --output T --application-id ID
//                     --state-dir DIR --expect N [--threads K] [--commit-interval-ms MS]
//                     [--timeout S] [--replication-factor R]
//
// A read_committed consumer of the output, running alongside, keeps the latest count of each
// word; the app stops once those add up to N, the number of words in the input. It prints,
// on stdout, one line per event (flushed at once, so a test can follow):
//
//     state <OLD> <NEW>                 Streams state changes
//     txn <transactional id> <node>     each transaction of this app and its coordinator,
//                                       once, after the first committed output
//     group-coordinator <node>          the node coordinating the app's consumer group
//     progress <sum>                    sum of the latest committed counts, every 250 ms
//     done <sum>                        all N words counted: exit 0
//     overshoot <sum>                   the counts add up to more than N (a word counted
//                                       twice): exit 3
//     fail <reason>                     Streams failed or S seconds (default 150) passed: exit 1
//
// Streams' own log (WARN and up) goes to stderr; an uncaught exception in a stream thread is
// printed there and shuts the app down (no thread replacement: a failure must show).
import java.io.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.*;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.*;
import org.apache.kafka.streams.state.KeyValueStore;

public class EosWordCount {
    static final PrintStream OUT = new PrintStream(new FileOutputStream(FileDescriptor.out), true);

    static synchronized void say(String line) {
        OUT.println(line);
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>(Map.of(
                "--threads", "2", "--commit-interval-ms", "200", "--timeout", "150",
                "--replication-factor", "3"));
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        for (String required : List.of("--bootstrap", "--input", "--output", "--application-id", "--state-dir", "--expect")) {
            if (!a.containsKey(required)) {
                System.err.println("usage: EosWordCount --bootstrap H:P --input T --output T --application-id ID"
                        + " --state-dir DIR --expect N [--threads K] [--commit-interval-ms MS] [--timeout S]"
                        + " [--replication-factor R]");
                System.exit(2);
            }
        }
        String bootstrap = a.get("--bootstrap"), input = a.get("--input"), output = a.get("--output");
        String appId = a.get("--application-id");
        long expect = Long.parseLong(a.get("--expect"));
        long deadline = System.currentTimeMillis() + (long) (1000 * Double.parseDouble(a.get("--timeout")));
        // The last resort: whatever hangs (a close, a client call), the app ends in time.
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(Math.max(0, deadline - System.currentTimeMillis()) + 30_000); } catch (InterruptedException e) { return; }
            say("fail watchdog");
            Runtime.getRuntime().halt(1);
        });
        watchdog.setDaemon(true);
        watchdog.start();

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.trim().split("\\s+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long())
                        .withCachingDisabled())
                .toStream()
                .mapValues((word, count) -> word + " " + count)
                .to(output, Produced.with(Serdes.String(), Serdes.String()));

        Properties sp = new Properties();
        sp.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        sp.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        sp.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        sp.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("--commit-interval-ms"));
        sp.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.get("--threads"));
        sp.put(StreamsConfig.STATE_DIR_CONFIG, a.get("--state-dir"));
        int replicationFactor = Integer.parseInt(a.get("--replication-factor"));
        sp.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, String.valueOf(replicationFactor));
        sp.put(StreamsConfig.topicPrefix(TopicConfig.MIN_IN_SYNC_REPLICAS_CONFIG), String.valueOf(Math.min(2, replicationFactor)));
        sp.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        KafkaStreams streams = new KafkaStreams(builder.build(), sp);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        streams.setStateListener((now, before) -> say("state " + before + " " + now));
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            System.err.println("EosWordCount: uncaught exception in a stream thread:");
            e.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();

        int status;
        try {
            status = watch(streams, failure, bootstrap, output, appId, expect, deadline);
        } catch (Throwable e) {
            e.printStackTrace();
            say("fail monitor: " + e);
            status = 1;
        }
        streams.close(Duration.ofSeconds(20));
        Runtime.getRuntime().halt(status);
    }

    /** Follows the output read_committed until the counts add up to `expect`; the exit status. */
    static int watch(KafkaStreams streams, AtomicReference<Throwable> failure, String bootstrap,
                     String output, String appId, long expect, long deadline) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        Map<String, Long> latest = new HashMap<>();
        long sum = 0;
        boolean coordinatorsShown = false;
        long nextProgress = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer());
             Admin admin = Admin.create(ap)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(output, Duration.ofSeconds(30)))
                tps.add(new TopicPartition(output, p.partition()));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            while (true) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                    String[] f = r.value().split(" ");
                    long count = Long.parseLong(f[1]);
                    Long before = latest.put(f[0], count);
                    sum += count - (before == null ? 0 : before);
                }
                long now = System.currentTimeMillis();
                if (now >= nextProgress) {
                    say("progress " + sum);
                    nextProgress = now + 250;
                }
                if (sum > expect) {
                    say("overshoot " + sum);
                    return 3;
                }
                if (sum == expect) {
                    say("done " + sum);
                    return 0;
                }
                if (!coordinatorsShown && sum > 0) {
                    coordinatorsShown = showCoordinators(admin, appId);
                }
                KafkaStreams.State state = streams.state();
                if (failure.get() != null || state == KafkaStreams.State.ERROR
                        || state == KafkaStreams.State.PENDING_ERROR || state == KafkaStreams.State.NOT_RUNNING) {
                    say("fail streams " + state + ": " + failure.get() + " (counted " + sum + " of " + expect + ")");
                    return 1;
                }
                if (now > deadline) {
                    say("fail timeout: counted " + sum + " of " + expect + " in state " + state);
                    return 1;
                }
            }
        }
    }

    /** Prints the coordinator of each of this app's transactions and of its group; whether it could. */
    static boolean showCoordinators(Admin admin, String appId) {
        try {
            List<String> ids = new ArrayList<>();
            for (TransactionListing t : admin.listTransactions().all().get())
                if (t.transactionalId().startsWith(appId)) ids.add(t.transactionalId());
            if (ids.isEmpty()) return false;
            for (Map.Entry<String, TransactionDescription> e : admin.describeTransactions(ids).all().get().entrySet())
                say("txn " + e.getKey() + " " + e.getValue().coordinatorId());
            say("group-coordinator " + admin.describeConsumerGroups(List.of(appId)).all().get().get(appId).coordinator().id());
            return true;
        } catch (Exception e) {
            System.err.println("EosWordCount: cannot describe the coordinators yet: " + e);
            return false;
        }
    }
}
