import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A consumer-group member for fault tests: subscribes, prints every record it processes, then
 * commits synchronously (commit after processing). Runs until --seconds elapse.
 *
 *   GroupConsumer --bootstrap H:P (--topic T | --pattern REGEX) --group G
 *                 [--protocol classic|consumer] [--seconds S]
 *
 * --pattern subscribes with a broker-side regex (SubscriptionPattern, consumer protocol only):
 * the broker matches it against topic names, including topics created later.
 *
 * Output lines: "ASSIGNED p,p,...", "R partition offset value", "COMMITTED", "COMMIT_FAILED why".
 */
public class GroupConsumer {
    public static void main(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) args.put(argv[i], argv[i + 1]);
        String protocol = args.getOrDefault("--protocol", "classic");
        long deadline = System.currentTimeMillis() + 1000L * Long.parseLong(args.getOrDefault("--seconds", "120"));

        Properties p = new Properties();
        p.put("bootstrap.servers", args.get("--bootstrap"));
        p.put("group.id", args.get("--group"));
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("group.protocol", protocol);
        if (protocol.equals("classic")) {
            p.put("session.timeout.ms", "10000");
            p.put("heartbeat.interval.ms", "1000");
        }
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {}

                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    StringBuilder sb = new StringBuilder("ASSIGNED ");
                    for (TopicPartition tp : parts) sb.append(tp.partition()).append(',');
                    System.out.println(sb);
                    System.out.flush();
                }
            };
            if (args.containsKey("--pattern")) {
                consumer.subscribe(new SubscriptionPattern(args.get("--pattern")), listener);
            } else {
                consumer.subscribe(List.of(args.get("--topic")), listener);
            }
            while (System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records;
                try {
                    records = consumer.poll(Duration.ofMillis(200));
                } catch (Exception e) {
                    System.out.println("POLL_FAILED " + e);
                    continue;
                }
                for (ConsumerRecord<String, String> r : records) {
                    System.out.println("R " + r.partition() + " " + r.offset() + " " + r.value());
                }
                if (!records.isEmpty()) {
                    try {
                        consumer.commitSync(Duration.ofSeconds(10));
                        System.out.println("COMMITTED");
                    } catch (Exception e) {
                        System.out.println("COMMIT_FAILED " + e);
                    }
                }
                System.out.flush();
            }
        }
    }
}
