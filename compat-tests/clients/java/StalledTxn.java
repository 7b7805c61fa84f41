// Leaves a transaction open, as a transactional producer that dies mid-transaction does
// (the Apache Kafka Java client, acks=all, idempotent). First commits one transaction of C
// records, then begins another, sends O records, waits until every one is acknowledged and
// stays in that open transaction without ending it: the test SIGKILLs it there. Prints
//
//     committed <first offset> <last offset>
//     open <first offset> <last offset>
//
// (stdout, flushed at once; failures on stderr, exit 1). All records go to partition 0:
// value c<i> for the committed ones, o<j> for the open ones.
//
//   java StalledTxn --bootstrap H:P --topic T --transactional-id ID --committed C --open O
//                   [--transaction-timeout-ms MS] [--timeout S] [--hold S]
//
// --transaction-timeout-ms (default 600000) is long, so the coordinator does not abort the
// open transaction on its own while the test looks at it. Exits 1 ("FAIL timeout") if the
// open transaction is not in place within --timeout seconds (default 120); once it is, it
// holds it --hold seconds (default 300) and then exits 0 without ending it, should nobody
// kill it.
import java.io.*;
import java.util.*;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.StringSerializer;

public class StalledTxn {
    static volatile boolean open = false;

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>(Map.of(
            "--timeout", "120", "--hold", "300", "--transaction-timeout-ms", "600000"));
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic"), txnId = a.get("--transactional-id");
        if (bootstrap == null || topic == null || txnId == null
                || !a.containsKey("--committed") || !a.containsKey("--open")) {
            System.err.println("usage: StalledTxn --bootstrap H:P --topic T --transactional-id ID --committed C --open O [--transaction-timeout-ms MS] [--timeout S] [--hold S]");
            System.exit(2);
        }
        int committed = Integer.parseInt(a.get("--committed"));
        int opened = Integer.parseInt(a.get("--open"));
        long timeoutMs = (long) (1000 * Double.parseDouble(a.get("--timeout")));
        long holdMs = (long) (1000 * Double.parseDouble(a.get("--hold")));
        Thread watchdog = new Thread(() -> {
            try { Thread.sleep(timeoutMs); } catch (InterruptedException e) { return; }
            if (!open) {
                System.err.println("FAIL timeout (watchdog)");
                Runtime.getRuntime().halt(1);
            }
        });
        watchdog.setDaemon(true);
        watchdog.start();

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        pp.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, a.get("--transaction-timeout-ms"));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
        try {
            producer.initTransactions();
            producer.beginTransaction();
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < committed; i++)
                sent.add(producer.send(new ProducerRecord<>(topic, 0, "k" + i, "c" + i)));
            producer.commitTransaction();
            out.println("committed " + range(sent));

            producer.beginTransaction();
            sent.clear();
            for (int j = 0; j < opened; j++)
                sent.add(producer.send(new ProducerRecord<>(topic, 0, "k" + j, "o" + j)));
            producer.flush();
            String offsets = range(sent);
            open = true;
            out.println("open " + offsets);
        } catch (Throwable e) {
            System.err.println("FAIL " + e);
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        // Neither commit nor abort nor close: the transaction stays open.
        Thread.sleep(holdMs);
        Runtime.getRuntime().halt(0);
    }

    // "<first offset> <last offset>" of acknowledged sends (throws if any failed).
    static String range(List<Future<RecordMetadata>> sent) throws Exception {
        long first = Long.MAX_VALUE, last = -1;
        for (Future<RecordMetadata> f : sent) {
            long o = f.get().offset();
            first = Math.min(first, o);
            last = Math.max(last, o);
        }
        return first + " " + last;
    }
}
