// Reads every partition of a topic from the beginning with the Apache Kafka Java client (no
// group: explicit assignment) at a given isolation level, printing each record's value on its
// own line, in the order polled (offset order within a partition):
//
//     <value>                  or, with --print-partition:   <partition> <value>
//
//   java TxnConsumer --bootstrap H:P --topic T --expect M
//                    [--isolation read_committed|read_uncommitted] [--timeout S]
//                    [--print-partition]
//
// Stops once it has read at least M records and its positions have reached the end offsets
// (the last stable offsets under read_committed), so records beyond the M expected ones are
// printed too. Exits 1 ("FAIL timeout ..." on stderr) if that takes more than S seconds
// (default 60).
import java.io.*;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class TxnConsumer {
    public static void main(String[] argv) {
        Map<String, String> a = new HashMap<>(Map.of("--timeout", "60", "--isolation", "read_committed"));
        boolean printPartition = false;
        for (int i = 0; i < argv.length; i++) {
            if (argv[i].equals("--print-partition")) printPartition = true;
            else if (i + 1 < argv.length) a.put(argv[i], argv[++i]);
        }
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic"), isolation = a.get("--isolation");
        if (bootstrap == null || topic == null || !a.containsKey("--expect")
                || !(isolation.equals("read_committed") || isolation.equals("read_uncommitted"))) {
            System.err.println("usage: TxnConsumer --bootstrap H:P --topic T --expect M [--isolation read_committed|read_uncommitted] [--timeout S] [--print-partition]");
            System.exit(2);
        }
        long expect = Long.parseLong(a.get("--expect"));
        long deadline = System.currentTimeMillis() + (long) (1000 * Double.parseDouble(a.get("--timeout")));

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), false);
        long count = 0;
        int status = 1;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30)))
                tps.add(new TopicPartition(topic, p.partition()));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    out.println(printPartition ? r.partition() + " " + r.value() : r.value());
                    count++;
                }
                if (count >= expect && caughtUp(consumer, tps)) {
                    status = 0;
                    break;
                }
            }
        } catch (Throwable e) {
            e.printStackTrace();
        }
        out.flush();
        if (status != 0) System.err.println("FAIL timeout or error: read " + count + " of " + expect + " records");
        Runtime.getRuntime().halt(status);
    }

    // Whether every position has reached its end offset: the high watermark under
    // read_uncommitted, the last stable offset under read_committed (the consumer's isolation
    // level decides which one endOffsets asks for).
    static boolean caughtUp(KafkaConsumer<String, String> consumer, List<TopicPartition> tps) {
        Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(10));
        for (TopicPartition tp : tps)
            if (consumer.position(tp) < end.get(tp)) return false;
        return true;
    }
}
