// Roundtrip with the Apache Kafka Java client (kafka-clients): admin create topic, produce M
// records with acks=all (default idempotent producer), consume them back by explicit
// assignment, check every record came back exactly once, unchanged, at its acked offset.
//
//   java Roundtrip --bootstrap HOST:PORT --topic NAME --partitions N --messages M [--timeout S]
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.*;

public class Roundtrip {
    record Sent(String key, String value, int partition, long offset) {}

    static long deadline;

    static long left() {
        long ms = deadline - System.currentTimeMillis();
        if (ms <= 0) fail("timeout");
        return ms;
    }

    static void fail(String msg) {
        System.out.println("FAIL " + msg);
        System.out.flush();
        Runtime.getRuntime().halt(1);
    }

    public static void main(String[] argv) {
        try {
            run(argv);
        } catch (Throwable e) {
            e.printStackTrace();
            fail(e.toString());
        }
    }

    static void run(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>(Map.of("--timeout", "90"));
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic");
        if (bootstrap == null || topic == null || !a.containsKey("--partitions") || !a.containsKey("--messages")) {
            System.err.println("usage: roundtrip --bootstrap H:P --topic T --partitions N --messages M [--timeout S]");
            System.exit(2);
        }
        int partitions = Integer.parseInt(a.get("--partitions")), messages = Integer.parseInt(a.get("--messages"));
        deadline = System.currentTimeMillis() + 1000L * Integer.parseInt(a.get("--timeout"));
        // Hard stop even if a client call blocks past its own timeouts.
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(Math.max(1, deadline - System.currentTimeMillis())); } catch (InterruptedException e) { return; }
            fail("timeout (watchdog)");
        });
        watchdog.setDaemon(true);
        watchdog.start();

        // (a) create the topic
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(left(), TimeUnit.MILLISECONDS);
        }

        // (b) produce, remembering where each record landed
        Random rnd = new Random();
        List<Sent> sent = new ArrayList<>();
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < messages; i++) {
                StringBuilder v = new StringBuilder("v-" + i + "-");
                for (int j = 0; j < 100; j++) v.append((char) (33 + rnd.nextInt(94)));
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, "k-" + i, v.toString());
                r.headers().add("idx", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                sent.add(new Sent(r.key(), r.value(), -1, -1));
                acks.add(producer.send(r));
            }
            producer.flush();
            for (int i = 0; i < messages; i++) {
                RecordMetadata md = acks.get(i).get(left(), TimeUnit.MILLISECONDS);
                Sent s = sent.get(i);
                sent.set(i, new Sent(s.key(), s.value(), md.partition(), md.offset()));
            }
        }

        // (c) consume every partition from the beginning, no group
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<String> errors = new ArrayList<>();
        Set<Integer> seen = new HashSet<>();
        Map<Integer, Long> lastOffset = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) tps.add(new TopicPartition(topic, p));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            int got = 0;
            while (got < messages) {
                left();
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    got++;
                    // (d) check it
                    Header h = r.headers().lastHeader("idx");
                    String idx = h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
                    String where = "p" + r.partition() + "@" + r.offset();
                    Long prev = lastOffset.put(r.partition(), r.offset());
                    if (prev != null && r.offset() <= prev) errors.add(where + ": offset not increasing (previous " + prev + ")");
                    int i;
                    try { i = Integer.parseInt(idx); } catch (Exception e) { errors.add(where + ": bad idx header " + idx); continue; }
                    if (i < 0 || i >= messages) { errors.add(where + ": idx out of range " + i); continue; }
                    if (!seen.add(i)) { errors.add(where + ": duplicate record idx " + i); continue; }
                    Sent s = sent.get(i);
                    if (!s.key().equals(r.key())) errors.add(where + ": key " + r.key() + " != " + s.key());
                    if (!s.value().equals(r.value())) errors.add(where + ": value differs for idx " + i);
                    if (s.partition() != r.partition() || s.offset() != r.offset())
                        errors.add(where + ": idx " + i + " was acked at p" + s.partition() + "@" + s.offset());
                }
            }
        }
        if (seen.size() != messages) errors.add("received " + seen.size() + " distinct of " + messages);
        if (!errors.isEmpty()) {
            errors.stream().limit(20).forEach(e -> System.out.println("DIFF " + e));
            fail(errors.size() + " difference(s)");
        }
        System.out.println("OK " + messages);
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
