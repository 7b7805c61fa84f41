// sarama-client: IBM/sarama against a Sluice node, in three subcommands run one after the
// other by compat-tests/tests/sarama.rs.
//
//	sarama-client produce       --bootstrap H:P --topic T --messages N [--first I] [--compression C]
//	sarama-client consume-group --bootstrap H:P --topic T --group G --messages N [--linger S]
//	sarama-client admin         --bootstrap H:P --topic T --group G --admin-topic A
//
// produce: an idempotent SyncProducer (acks=all) sends records I..I+N-1, key "k-<i>", value
// value(i), headers idx=<i> and client=sarama; prints "ACK <partition> <offset> <key>" per
// record, then a JSON summary.
// consume-group: one ConsumerGroup member reads T from the oldest offset (or the group's
// committed offsets), marks and commits, prints "R <partition> <offset> <timestamp ms> <key>
// <value> <headers>" per record, stops after N records (plus --linger seconds to catch
// extras, which it prints but does not mark), then a JSON summary.
// admin: a ClusterAdmin round trip, one JSON line per step ({"op": ..., "error": ...}); a
// failing step does not stop the later ones, so one run shows every problem.
//
// Every subcommand exits non-zero on any client error, and a watchdog ends it after
// --timeout seconds (default 60): sarama's calls take no context, so that is what bounds
// them. A "REQUESTS" line near the end (also after a FAIL) counts the requests sent, by API
// and version; sarama's own log goes to stderr. Both are for failure messages.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// kafkaVersion pins the protocol versions sarama sends: the newest Kafka it knows
// (sarama.MaxVersion in v1.61.1). Sarama still clamps each request to the range the broker
// advertises in ApiVersions, and refuses (ErrUnsupportedVersion) an API the broker leaves
// out, so a gap in Sluice's ApiVersions shows up here.
var kafkaVersion = sarama.V4_3_1_0

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "produce":
		produce(args)
	case "consume-group":
		consumeGroup(args)
	case "admin":
		admin(args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sarama-client produce|consume-group|admin --bootstrap H:P ... (-h for flags)")
	os.Exit(2)
}

func fail(format string, args ...any) {
	fmt.Printf("FAIL "+format+"\n", args...)
	fmt.Println(sent.summary())
	os.Exit(1)
}

// flags shared by every subcommand.
type common struct {
	fs        *flag.FlagSet
	bootstrap *string
	topic     *string
	timeout   *float64
}

func newFlags(name string) common {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	return common{
		fs:        fs,
		bootstrap: fs.String("bootstrap", "", "host:port"),
		topic:     fs.String("topic", "", "topic"),
		timeout:   fs.Float64("timeout", 60, "bound on the whole run, in seconds"),
	}
}

// parse parses args, checks the shared flags and arms the watchdog (5 s after the limit it
// returns, which a subcommand may watch itself to report more).
func (c common) parse(args []string) time.Duration {
	_ = c.fs.Parse(args)
	if *c.bootstrap == "" || *c.topic == "" {
		c.fs.Usage()
		os.Exit(2)
	}
	limit := time.Duration(*c.timeout * float64(time.Second))
	time.AfterFunc(limit+5*time.Second, func() {
		fmt.Printf("FAIL timeout: %s did not finish within %v\n", c.fs.Name(), limit)
		fmt.Println(sent.summary())
		os.Exit(3)
	})
	return limit
}

// newConfig is the configuration every subcommand starts from.
func newConfig(role string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = kafkaVersion
	c.ClientID = "sluice-compat-sarama-" + role
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	// A topic auto-created by the first Metadata request may have no leader for a moment.
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	// Sarama's "proxy" hook is its only way to wrap connections: here it counts requests
	// (sarama logs "using proxy" for it). No proxy is involved.
	c.Net.Proxy.Enable = true
	c.Net.Proxy.Dialer = &tracingDialer{net.Dialer{Timeout: c.Net.DialTimeout, KeepAlive: c.Net.KeepAlive}}
	return c
}

// ---- which requests went out -----------------------------------------------------------

// sent counts the requests sarama wrote, by API key and version, read off the request
// headers on the wire: sarama does not say which version it settled on for each API (the
// minimum of its own, from kafkaVersion, and the broker's), and a failure report needs it.
var sent = &requestCounts{n: map[[2]int16]int{}}

type requestCounts struct {
	sync.Mutex
	n map[[2]int16]int // (api key, version) -> requests
}

var apiNames = map[int16]string{0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata",
	8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
	13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups", 18: "ApiVersions",
	19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
	32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions", 44: "IncrementalAlterConfigs",
	60: "DescribeCluster"}

// summary is one line: "REQUESTS Produce/v10=12 Fetch/v12=30 ...", in API key order.
func (s *requestCounts) summary() string {
	s.Lock()
	defer s.Unlock()
	keys := make([][2]int16, 0, len(s.n))
	for k := range s.n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	var b strings.Builder
	b.WriteString("REQUESTS")
	for _, k := range keys {
		name := apiNames[k[0]]
		if name == "" {
			name = fmt.Sprintf("api%d", k[0])
		}
		fmt.Fprintf(&b, " %s/v%d=%d", name, k[1], s.n[k])
	}
	return b.String()
}

type tracingDialer struct{ net.Dialer }

func (d *tracingDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := d.Dialer.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &tracedConn{Conn: c}, nil
}

// tracedConn reads the header of each request frame written (size, api key, version).
type tracedConn struct {
	net.Conn
	rest int // bytes of the current frame still to come
}

func (c *tracedConn) Write(p []byte) (int, error) {
	for q := p; len(q) > 0; {
		if c.rest == 0 {
			if len(q) < 8 {
				break // sarama writes whole frames: not seen, but not worth guessing at
			}
			sent.Lock()
			sent.n[[2]int16{int16(binary.BigEndian.Uint16(q[4:])), int16(binary.BigEndian.Uint16(q[6:]))}]++
			sent.Unlock()
			c.rest = 4 + int(binary.BigEndian.Uint32(q))
		}
		k := min(c.rest, len(q))
		c.rest -= k
		q = q[k:]
	}
	return c.Conn.Write(p)
}

// value is record i's value: varied, partly repetitive, so compression has work to do.
func value(i int) string {
	return fmt.Sprintf("v-%d-%s", i, strings.Repeat("xyz", i%17))
}

// ---- produce ---------------------------------------------------------------------------

func produce(args []string) {
	c := newFlags("produce")
	messages := c.fs.Int("messages", 0, "records to produce")
	first := c.fs.Int("first", 0, "index of the first record")
	compression := c.fs.String("compression", "none", "none|gzip|snappy|lz4|zstd")
	c.parse(args)

	cfg := newConfig("producer")
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	// Sarama requires one request in flight per broker for idempotence: its retries keep
	// the batches' sequence numbers in order only then.
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 5
	cfg.Producer.Return.Successes = true // a SyncProducer needs both
	cfg.Producer.Return.Errors = true
	cfg.Producer.Timeout = 10 * time.Second // acks=all wait on the broker
	if err := cfg.Producer.Compression.UnmarshalText([]byte(*compression)); err != nil {
		fail("%v", err)
	}
	p, err := sarama.NewSyncProducer([]string{*c.bootstrap}, cfg)
	if err != nil {
		fail("producer: %v", err)
	}

	type part struct {
		Count      int   `json:"count"`
		LastOffset int64 `json:"last_offset"`
	}
	parts := map[int32]*part{}
	out := bufio.NewWriter(os.Stdout)
	start := time.Now()
	// SendMessages in slices of 500: one call per record would be one round trip each,
	// while a slice lets the producer batch (still one request in flight).
	const slice = 500
	for lo := *first; lo < *first+*messages; lo += slice {
		hi := min(lo+slice, *first+*messages)
		msgs := make([]*sarama.ProducerMessage, 0, hi-lo)
		for i := lo; i < hi; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: *c.topic,
				Key:   sarama.StringEncoder(fmt.Sprintf("k-%d", i)),
				Value: sarama.StringEncoder(value(i)),
				Headers: []sarama.RecordHeader{
					{Key: []byte("idx"), Value: []byte(strconv.Itoa(i))},
					{Key: []byte("client"), Value: []byte("sarama")},
				},
			})
		}
		if err := p.SendMessages(msgs); err != nil {
			var perrs sarama.ProducerErrors
			if errors.As(err, &perrs) && len(perrs) > 0 {
				fail("produce: %d of %d records failed, first: key %v: %v", len(perrs), len(msgs), perrs[0].Msg.Key, perrs[0].Err)
			}
			fail("produce: %v", err)
		}
		for _, m := range msgs {
			fmt.Fprintf(out, "ACK %d %d %s\n", m.Partition, m.Offset, m.Key)
			pt := parts[m.Partition]
			if pt == nil {
				pt = &part{LastOffset: -1}
				parts[m.Partition] = pt
			}
			pt.Count++
			pt.LastOffset = max(pt.LastOffset, m.Offset)
		}
	}
	if err := p.Close(); err != nil {
		fail("close producer: %v", err)
	}
	summary, _ := json.Marshal(map[string]any{
		"produced": *messages, "compression": *compression, "partitions": parts,
		"seconds": time.Since(start).Seconds(),
	})
	fmt.Fprintf(out, "%s\n%s\n", summary, sent.summary())
	if err := out.Flush(); err != nil {
		fail("stdout: %v", err)
	}
}

// ---- consume-group ---------------------------------------------------------------------

// member is the sarama.ConsumerGroupHandler: one ConsumeClaim goroutine per partition, so
// everything it shares is under mu.
type member struct {
	want     int
	mu       sync.Mutex
	seen     int
	next     map[int32]int64 // offset after the last record marked, per partition
	out      *bufio.Writer
	done     chan struct{} // closed once `want` records were seen and committed
	sessions int
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.sessions++
	m.mu.Unlock()
	log.Printf("session: member %s generation %d claims %v", s.MemberID(), s.GenerationID(), s.Claims())
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-s.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			m.record(s, msg)
		}
	}
}

func (m *member) record(s sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs := make([]string, 0, len(msg.Headers))
	for _, h := range msg.Headers {
		hs = append(hs, string(h.Key)+"="+string(h.Value))
	}
	fmt.Fprintf(m.out, "R %d %d %d %s %s %s\n", msg.Partition, msg.Offset, msg.Timestamp.UnixMilli(), msg.Key, msg.Value, strings.Join(hs, ","))
	m.seen++
	if m.seen > m.want {
		return // an extra record (duplicate or unexpected): printed, never marked
	}
	s.MarkMessage(msg, "")
	m.next[msg.Partition] = msg.Offset + 1
	if m.seen == m.want {
		s.Commit() // synchronous; a failure comes out of the group's Errors()
		close(m.done)
	}
}

func consumeGroup(args []string) {
	c := newFlags("consume-group")
	group := c.fs.String("group", "", "consumer group id")
	messages := c.fs.Int("messages", 0, "records to consume")
	linger := c.fs.Float64("linger", 1, "seconds to keep reading after the last expected record, to catch extras")
	limit := c.parse(args)
	if *group == "" || *messages <= 0 {
		c.fs.Usage()
		os.Exit(2)
	}

	cfg := newConfig("group")
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest // a new group reads everything
	cfg.Consumer.Offsets.AutoCommit.Enable = true      // the usual path; plus one Commit at the end
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	cfg.Consumer.Return.Errors = true // commit and fetch errors fail the run, not just a log line
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	g, err := sarama.NewConsumerGroup([]string{*c.bootstrap}, *group, cfg)
	if err != nil {
		fail("consumer group: %v", err)
	}

	var errMu sync.Mutex // not member.mu: a Commit under that lock may be queueing an error
	errs := []string{}
	errsDone := make(chan struct{})
	go func() { // the channel closes when the group is closed
		for err := range g.Errors() {
			log.Printf("group error: %v", err)
			errMu.Lock()
			errs = append(errs, err.Error())
			errMu.Unlock()
		}
		close(errsDone)
	}()

	m := &member{want: *messages, next: map[int32]int64{}, out: bufio.NewWriter(os.Stdout), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	consumeErr := make(chan error, 1)
	go func() {
		// Consume returns at every rebalance; join again until cancelled.
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{*c.topic}, m); err != nil {
				consumeErr <- err
				return
			}
		}
	}()
	start := time.Now()
	select {
	case <-m.done:
		time.Sleep(time.Duration(*linger * float64(time.Second)))
	case err := <-consumeErr:
		m.mu.Lock()
		_ = m.out.Flush()
		fail("consume after %d of %d records: %v", m.seen, m.want, err)
	case <-time.After(limit):
		m.mu.Lock()
		_ = m.out.Flush()
		errMu.Lock()
		fail("timeout: %d of %d records within %v (group errors: %v)", m.seen, m.want, limit, errs)
	}
	cancel()
	closeErr := g.Close() // leaves the group, flushes the offset manager
	<-errsDone

	m.mu.Lock()
	defer m.mu.Unlock()
	summary, _ := json.Marshal(map[string]any{
		"consumed": m.seen, "next_offsets": m.next, "sessions": m.sessions,
		"seconds": time.Since(start).Seconds(), "errors": errs,
	})
	fmt.Fprintf(m.out, "%s\n%s\n", summary, sent.summary())
	if err := m.out.Flush(); err != nil {
		fail("stdout: %v", err)
	}
	if closeErr != nil {
		fail("close group: %v", closeErr)
	}
	if len(errs) > 0 {
		fail("%d group error(s), first: %s", len(errs), errs[0])
	}
}

// ---- admin -----------------------------------------------------------------------------

// steps collects the names of the admin steps that failed.
type steps struct{ failed []string }

// emit prints one admin step as a JSON line; a step with an error marks the run failed.
func (s *steps) emit(op string, fields map[string]any, err error) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["op"] = op
	if err != nil {
		fields["error"] = err.Error()
		s.failed = append(s.failed, op)
	}
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

// configs describes a resource and returns the named entries: name -> value/source/default.
func configs(ca sarama.ClusterAdmin, typ sarama.ConfigResourceType, name string, keys ...string) (map[string]any, error) {
	entries, err := ca.DescribeConfig(sarama.ConfigResource{Type: typ, Name: name})
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := map[string]any{}
	for _, e := range entries {
		if want[e.Name] {
			out[e.Name] = map[string]any{"value": e.Value, "source": e.Source.String(), "default": e.Default, "read_only": e.ReadOnly}
		}
	}
	return out, nil
}

// topicShape is what DescribeTopics says of one topic.
func topicShape(t *sarama.TopicMetadata) map[string]any {
	parts := make([]map[string]any, 0, len(t.Partitions))
	sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].ID < t.Partitions[j].ID })
	for _, p := range t.Partitions {
		parts = append(parts, map[string]any{"id": p.ID, "leader": p.Leader, "replicas": p.Replicas, "isr": p.Isr, "error": kerr(p.Err)})
	}
	return map[string]any{"name": t.Name, "error": kerr(t.Err), "partitions": parts}
}

// kerr is a Kafka error code as text, "" for none.
func kerr(e sarama.KError) string {
	if e == sarama.ErrNoError {
		return ""
	}
	return e.Error()
}

func admin(args []string) {
	c := newFlags("admin")
	group := c.fs.String("group", "", "the consumer group consume-group used")
	adminTopic := c.fs.String("admin-topic", "", "topic to create, alter and delete (default <topic>-admin)")
	c.parse(args)
	if *group == "" {
		c.fs.Usage()
		os.Exit(2)
	}
	if *adminTopic == "" {
		*adminTopic = *c.topic + "-admin"
	}
	a := *adminTopic
	s := &steps{}

	client, err := sarama.NewClient([]string{*c.bootstrap}, newConfig("admin"))
	if err != nil {
		fail("client: %v", err)
	}
	ca, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		fail("cluster admin: %v", err)
	}
	defer ca.Close()

	brokers, controller, err := ca.DescribeCluster()
	ids := []int32{}
	for _, b := range brokers {
		ids = append(ids, b.ID())
	}
	s.emit("describe_cluster", map[string]any{"brokers": ids, "controller": controller}, err)

	cfgs, err := configs(ca, sarama.BrokerResource, strconv.Itoa(int(controller)), "num.partitions")
	s.emit("describe_broker_config", map[string]any{"configs": cfgs}, err)

	// retention.bytes is set here and left out of the AlterConfig below, which replaces a
	// topic's whole config: it must fall back to its default then.
	str := func(v string) *string { return &v }
	err = ca.CreateTopic(a, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": str("3600000"), "retention.bytes": str("1048576000")}}, false)
	s.emit("create_topic", map[string]any{"topic": a}, err)

	// ListTopics is Metadata for every topic plus DescribeConfigs for every topic.
	all, err := ca.ListTopics()
	listed := map[string]any{}
	for _, name := range []string{*c.topic, a} {
		if d, ok := all[name]; ok {
			retention := ""
			if v := d.ConfigEntries["retention.ms"]; v != nil {
				retention = *v
			}
			listed[name] = map[string]any{"partitions": d.NumPartitions, "replication_factor": d.ReplicationFactor, "retention.ms": retention}
		}
	}
	s.emit("list_topics", map[string]any{"topics": listed}, err)

	metas, err := ca.DescribeTopics([]string{*c.topic, a})
	shapes := []map[string]any{}
	for _, t := range metas {
		shapes = append(shapes, topicShape(t))
	}
	s.emit("describe_topics", map[string]any{"topics": shapes}, err)

	keys := []string{"retention.ms", "retention.bytes", "max.message.bytes", "cleanup.policy"}
	cfgs, err = configs(ca, sarama.TopicResource, a, keys...)
	s.emit("describe_config", map[string]any{"configs": cfgs}, err)

	// IncrementalAlterConfigs: SET one key, leave the others alone.
	err = ca.IncrementalAlterConfig(sarama.TopicResource, a, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: str("7200000")},
	}, false)
	if err == nil {
		cfgs, err = configs(ca, sarama.TopicResource, a, keys...)
	}
	s.emit("incremental_alter_config", map[string]any{"configs": cfgs}, err)

	// AlterConfigs (the old API, what sarama's AlterConfig sends): replaces the whole set.
	err = ca.AlterConfig(sarama.TopicResource, a, map[string]*string{
		"retention.ms": str("10800000"), "max.message.bytes": str("2000000"),
	}, false)
	cfgs = nil
	if err == nil {
		cfgs, err = configs(ca, sarama.TopicResource, a, keys...)
	}
	s.emit("alter_config", map[string]any{"configs": cfgs}, err)

	err = ca.CreatePartitions(a, 5, nil, false)
	var parts int
	if err == nil {
		metas, err = ca.DescribeTopics([]string{a})
		if err == nil && len(metas) == 1 {
			parts = len(metas[0].Partitions)
		}
	}
	s.emit("create_partitions", map[string]any{"topic": a, "partitions": parts}, err)

	groups, err := ca.ListConsumerGroups()
	s.emit("list_consumer_groups", map[string]any{"groups": groups}, err)

	descs, err := ca.DescribeConsumerGroups([]string{*group})
	out := []map[string]any{}
	for _, d := range descs {
		out = append(out, map[string]any{"group": d.GroupId, "error": kerr(d.Err), "state": d.State,
			"protocol_type": d.ProtocolType, "protocol": d.Protocol, "members": len(d.Members)})
	}
	s.emit("describe_consumer_groups", map[string]any{"groups": out}, err)

	// The group's committed offsets next to the topic's end offsets (admin ListOffsets).
	metas, err = ca.DescribeTopics([]string{*c.topic})
	var ps []int32
	if err == nil && len(metas) == 1 {
		for _, p := range metas[0].Partitions {
			ps = append(ps, p.ID)
		}
	}
	committed, ends := map[int32]int64{}, map[int32]int64{}
	if err == nil {
		var rsp *sarama.OffsetFetchResponse
		rsp, err = ca.ListConsumerGroupOffsets(*group, map[string][]int32{*c.topic: ps})
		if err == nil && rsp.Err != sarama.ErrNoError {
			err = rsp.Err
		}
		for _, p := range ps {
			if err != nil {
				break
			}
			if b := rsp.GetBlock(*c.topic, p); b == nil {
				err = fmt.Errorf("no committed offset block for partition %d", p)
			} else if b.Err != sarama.ErrNoError {
				err = fmt.Errorf("partition %d: %w", p, b.Err)
			} else {
				committed[p] = b.Offset
			}
		}
	}
	if err == nil {
		ends, err = listOffsets(ca, *c.topic, ps, sarama.OffsetNewest)
	}
	s.emit("list_consumer_group_offsets", map[string]any{"group": *group, "committed": committed, "end": ends}, err)

	// DeleteRecords: cut partition 0 of the data topic in half; its start offset must move.
	before := ends[0] / 2
	err = ca.DeleteRecords(*c.topic, map[int32]int64{0: before})
	var starts map[int32]int64
	if err == nil {
		starts, err = listOffsets(ca, *c.topic, []int32{0}, sarama.OffsetOldest)
	}
	s.emit("delete_records", map[string]any{"partition": 0, "before": before, "log_start": starts[0]}, err)

	// DeleteTopic, then wait (bounded) until the topic is gone from ListTopics.
	err = ca.DeleteTopic(a)
	gone := false
	t0 := time.Now()
	for err == nil && !gone && time.Since(t0) < 10*time.Second {
		if all, err = ca.ListTopics(); err == nil {
			_, present := all[a]
			gone = !present
			if !gone {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	s.emit("delete_topic", map[string]any{"topic": a, "gone": gone, "seconds": time.Since(t0).Seconds()}, err)

	if len(s.failed) > 0 {
		fail("admin steps failed: %s", strings.Join(s.failed, ", "))
	}
	fmt.Println(sent.summary())
	fmt.Println("OK admin")
}

// listOffsets asks the admin's ListOffsets for one offset spec (newest/oldest) per partition.
func listOffsets(ca sarama.ClusterAdmin, topic string, ps []int32, spec int64) (map[int32]int64, error) {
	req := map[int32]int64{}
	for _, p := range ps {
		req[p] = spec
	}
	rsp, err := ca.ListOffsets(map[string]map[int32]int64{topic: req}, nil)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range ps {
		r := rsp[topic][p]
		switch {
		case r == nil:
			return nil, fmt.Errorf("ListOffsets: no answer for partition %d", p)
		case r.Err != nil && !errors.Is(r.Err, sarama.ErrNoError):
			return nil, fmt.Errorf("ListOffsets partition %d: %w", p, r.Err)
		}
		out[p] = r.Offset
	}
	return out, nil
}
