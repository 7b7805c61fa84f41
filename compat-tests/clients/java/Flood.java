// The noisy neighbours of the benchmark's P9: many producers in one JVM, each on its own
// thread and connection, sending 1 KiB records (acks=1) as fast as the broker takes them for
// a fixed time, each with its own client id <prefix>-<i> (so per-client quotas apply to
// each). Ends with one line:
//
//     FLOOD producers=<n> seconds=<s> records=<acked> bytes=<acked bytes> throttle_max_ms=<ms>
//
//   java Flood --bootstrap H:P --topic T --producers N --seconds S [--prefix P] [--size B]
import java.util.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Flood {
    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>(Map.of("--prefix", "flood", "--size", "1024"));
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic");
        if (bootstrap == null || topic == null || !a.containsKey("--producers") || !a.containsKey("--seconds")) {
            System.err.println("usage: Flood --bootstrap H:P --topic T --producers N --seconds S [--prefix P] [--size B]");
            System.exit(2);
        }
        int producers = Integer.parseInt(a.get("--producers"));
        double seconds = Double.parseDouble(a.get("--seconds"));
        byte[] value = new byte[Integer.parseInt(a.get("--size"))];
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        AtomicLong records = new AtomicLong(), bytes = new AtomicLong();
        List<Thread> threads = new ArrayList<>();
        double[] throttleMax = new double[producers];
        for (int i = 0; i < producers; i++) {
            int n = i;
            Thread t = new Thread(() -> {
                Properties pp = new Properties();
                pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
                pp.put(ProducerConfig.CLIENT_ID_CONFIG, a.get("--prefix") + "-" + n);
                pp.put(ProducerConfig.ACKS_CONFIG, "1");
                pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
                pp.put(ProducerConfig.BATCH_SIZE_CONFIG, "65536");
                // 50 producers in one small heap: a few batches each.
                pp.put(ProducerConfig.BUFFER_MEMORY_CONFIG, "2097152");
                pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
                try (Producer<byte[], byte[]> p =
                        new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
                    while (System.nanoTime() < deadline) {
                        p.send(new ProducerRecord<>(topic, value), (md, e) -> {
                            if (e == null) {
                                records.incrementAndGet();
                                bytes.addAndGet(value.length);
                            }
                        });
                    }
                    p.flush();
                    for (Map.Entry<?, ? extends Metric> m : p.metrics().entrySet()) {
                        if (m.getValue().metricName().name().equals("produce-throttle-time-max")
                                && m.getValue().metricName().group().equals("producer-metrics")) {
                            Object v = m.getValue().metricValue();
                            if (v instanceof Double d && !d.isNaN()) throttleMax[n] = d;
                        }
                    }
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) t.join();
        double throttle = Arrays.stream(throttleMax).max().orElse(0);
        System.out.printf("FLOOD producers=%d seconds=%.1f records=%d bytes=%d throttle_max_ms=%.0f%n",
                producers, seconds, records.get(), bytes.get(), throttle);
    }
}
