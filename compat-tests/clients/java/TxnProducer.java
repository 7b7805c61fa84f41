// Runs N transactions of R records each with the Apache Kafka Java client's transactional
// producer (acks=all, idempotent), committing them all but every third one (i % 3 == 2),
// which it aborts. Prints one line per transaction once it has ended:
//
//     committed <i>        or        aborted <i>        (stdout; failures on stderr, exit 1)
//
//   java TxnProducer --bootstrap H:P --topic T --transactions N --records R
//                    --transactional-id ID [--timeout S]
//
// Record j of transaction i has key k<j>, value t<i>-r<j> and goes to partition j % P (P the
// topic's partition count), so every transaction spans every partition once R >= P.
import java.io.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnProducer {
    public static void main(String[] argv) {
        Map<String, String> a = new HashMap<>(Map.of("--timeout", "120"));
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic"), txnId = a.get("--transactional-id");
        if (bootstrap == null || topic == null || txnId == null
                || !a.containsKey("--transactions") || !a.containsKey("--records")) {
            System.err.println("usage: TxnProducer --bootstrap H:P --topic T --transactions N --records R --transactional-id ID [--timeout S]");
            System.exit(2);
        }
        int transactions = Integer.parseInt(a.get("--transactions"));
        int records = Integer.parseInt(a.get("--records"));
        long timeoutMs = (long) (1000 * Double.parseDouble(a.get("--timeout")));
        // The client's own timeouts (max.block.ms, delivery.timeout.ms) bound each call, not
        // the whole run: a broker that answers slowly but never fails must not hang the test.
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(timeoutMs); } catch (InterruptedException e) { return; }
            System.err.println("FAIL timeout (watchdog)");
            Runtime.getRuntime().halt(1);
        });
        watchdog.setDaemon(true);
        watchdog.start();

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        pp.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        int status = 0;
        KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
        try {
            producer.initTransactions();
            int partitions = producer.partitionsFor(topic).size();
            for (int i = 0; i < transactions; i++) {
                producer.beginTransaction();
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int j = 0; j < records; j++)
                    sent.add(producer.send(new ProducerRecord<>(topic, j % partitions, "k" + j, "t" + i + "-r" + j)));
                if (i % 3 == 2) {
                    // abortTransaction drops batches not sent yet: flush first, so the aborted
                    // records are in the log (a read_uncommitted consumer must see them).
                    producer.flush();
                    for (Future<RecordMetadata> f : sent) f.get();
                    producer.abortTransaction();
                    out.println("aborted " + i);
                } else {
                    // Throws if any send of the transaction failed.
                    producer.commitTransaction();
                    out.println("committed " + i);
                }
            }
        } catch (Throwable e) {
            System.err.println("FAIL " + e);
            e.printStackTrace();
            status = 1;
        } finally {
            producer.close(Duration.ofSeconds(10));
        }
        out.flush();
        Runtime.getRuntime().halt(status);
    }
}
