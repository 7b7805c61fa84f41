// Produces numbered records with the Apache Kafka Java client (acks=all with idempotence by
// default; --acks 1 or 0 turns idempotence off, which those require),
// printing one line per acknowledged record at once, so a fault test can check that every
// acknowledged record survived, once, at its offset, in order:
//
//     ACK <partition> <offset> <value>        (stdout; failures as NACK lines on stderr)
//
//   java AckProducer --bootstrap H:P --topic T --messages M [--timeout S] [--prefix P]
//                    [--rate N] [--stop-on-eof] [--acks all|1|0]
//
// Values are <prefix><i> for i = 0, 1, ... in send order (keys k<i>); --rate paces sends to
// about N records a second; --stop-on-eof stops sending once stdin closes. Ends with
// "DONE unacked=<n>" after flushing.
import java.io.*;
import java.util.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.StringSerializer;

public class AckProducer {
    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>(Map.of("--timeout", "120", "--prefix", "v", "--rate", "0", "--acks", "all"));
        Set<String> flags = new HashSet<>();
        for (int i = 0; i < argv.length; i++) {
            if (argv[i].equals("--stop-on-eof")) flags.add(argv[i]);
            else if (i + 1 < argv.length) a.put(argv[i], argv[++i]);
        }
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic"), prefix = a.get("--prefix");
        if (bootstrap == null || topic == null || !a.containsKey("--messages")) {
            System.err.println("usage: ack-producer-java --bootstrap H:P --topic T --messages M [--timeout S] [--prefix P] [--rate N] [--stop-on-eof]");
            System.exit(2);
        }
        int messages = Integer.parseInt(a.get("--messages"));
        double rate = Double.parseDouble(a.get("--rate"));
        long timeoutMs = (long) (1000 * Double.parseDouble(a.get("--timeout")));
        long start = System.currentTimeMillis(), deadline = start + timeoutMs;
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(timeoutMs + 10_000); } catch (InterruptedException e) { return; }
            System.err.println("FAIL timeout (watchdog)");
            Runtime.getRuntime().halt(1);
        });
        watchdog.setDaemon(true);
        watchdog.start();
        AtomicBoolean stop = new AtomicBoolean(false);
        if (flags.contains("--stop-on-eof")) {
            Thread eof = new Thread(() -> {
                try { while (System.in.read() >= 0) {} } catch (IOException e) { }
                stop.set(true);
            });
            eof.setDaemon(true);
            eof.start();
        }

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        String acks = a.get("--acks");
        pp.put(ProducerConfig.ACKS_CONFIG, acks);
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, Boolean.toString(acks.equals("all")));
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "2");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(timeoutMs));
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        pp.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        pp.put(ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, "200");
        pp.put(ProducerConfig.METADATA_MAX_AGE_CONFIG, "2000");
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        AtomicLong pending = new AtomicLong();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < messages && !stop.get(); i++) {
                if (rate > 0) {
                    long ahead = start + (long) (i * 1000 / rate) - System.currentTimeMillis();
                    if (ahead > 0) Thread.sleep(ahead);
                }
                if (System.currentTimeMillis() > deadline) break;
                String value = prefix + i;
                pending.incrementAndGet();
                producer.send(new ProducerRecord<>(topic, "k" + i, value), (md, err) -> {
                    pending.decrementAndGet();
                    if (err == null) {
                        synchronized (out) { out.println("ACK " + md.partition() + " " + md.offset() + " " + value); }
                    } else {
                        System.err.println("NACK " + value + " " + err);
                    }
                });
            }
            producer.flush();
        }
        synchronized (out) { out.println("DONE unacked=" + pending.get()); }
        out.flush();
        Runtime.getRuntime().halt(0);
    }
}
