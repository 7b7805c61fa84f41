// Reads every partition of a topic from the beginning with the Apache Kafka Java client (no
// group: explicit assignment), printing each record at once, until stdin closes:
//
//     <partition> <offset> <value>
//
//   java TailConsumer --bootstrap H:P --topic T --partitions N [--timeout S]
//
// Fault tests run it while brokers fail, then check that everything it read is still in
// the log at the same offset (a consumer must never see records above the high watermark).
import java.io.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class TailConsumer {
    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>(Map.of("--timeout", "300"));
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic");
        if (bootstrap == null || topic == null || !a.containsKey("--partitions")) {
            System.err.println("usage: tail-consumer-java --bootstrap H:P --topic T --partitions N [--timeout S]");
            System.exit(2);
        }
        int partitions = Integer.parseInt(a.get("--partitions"));
        long deadline = System.currentTimeMillis() + 1000L * Long.parseLong(a.get("--timeout"));
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread eof = new Thread(() -> {
            try { while (System.in.read() >= 0) {} } catch (IOException e) { }
            stop.set(true);
        });
        eof.setDaemon(true);
        eof.start();

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        cp.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "2000");
        PrintStream out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), false);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) tps.add(new TopicPartition(topic, p));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            while (!stop.get() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200)))
                    out.println(r.partition() + " " + r.offset() + " " + r.value());
                out.flush();
            }
        } catch (Throwable e) {
            e.printStackTrace();
        }
        out.flush();
        Runtime.getRuntime().halt(0);
    }
}
