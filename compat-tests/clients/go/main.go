// franz-roundtrip: roundtrip with franz-go (kadm + kgo): admin create topic, produce M
// records with acks=all (kgo's default idempotent producer), consume them back by explicit
// partition assignment, check every record came back exactly once, unchanged, at its acked
// offset.
//
//	franz-roundtrip --bootstrap HOST:PORT --topic NAME --partitions N --messages M [--timeout S]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type sent struct {
	key, value string
	partition  int32
	offset     int64
}

func fail(format string, args ...any) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	bootstrap := flag.String("bootstrap", "", "host:port")
	topic := flag.String("topic", "", "topic to create")
	partitions := flag.Int("partitions", 0, "partition count")
	messages := flag.Int("messages", 0, "records to produce")
	timeoutSec := flag.Float64("timeout", 90, "bound on the whole run, in seconds")
	flag.Parse()
	if *bootstrap == "" || *topic == "" || *partitions <= 0 || *messages < 0 {
		flag.Usage()
		os.Exit(2)
	}
	timeout := time.Duration(*timeoutSec * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	time.AfterFunc(timeout+5*time.Second, func() { fail("timeout (watchdog)") })

	// (a) create the topic
	cl, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		fail("client: %v", err)
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(*partitions), 1, nil, *topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		fail("create topic: %v", err)
	}

	// (b) produce, remembering where each record landed
	recs := make([]sent, *messages)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var produceErrs []string
	for i := range recs {
		value := make([]byte, 0, 110)
		value = append(value, fmt.Sprintf("v-%d-", i)...)
		for j := 0; j < 100; j++ {
			value = append(value, byte(33+rand.Intn(94)))
		}
		r := &kgo.Record{Topic: *topic, Key: []byte(fmt.Sprintf("k-%d", i)), Value: value,
			Headers: []kgo.RecordHeader{{Key: "idx", Value: []byte(strconv.Itoa(i))}}}
		recs[i] = sent{key: string(r.Key), value: string(value)}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				produceErrs = append(produceErrs, fmt.Sprintf("idx %d: %v", i, err))
				return
			}
			recs[i].partition, recs[i].offset = r.Partition, r.Offset
		})
	}
	wg.Wait()
	if len(produceErrs) > 0 {
		fail("produce: %d errors, first: %s", len(produceErrs), produceErrs[0])
	}
	cl.Close()

	// (c) consume every partition from the beginning, no group
	assign := map[int32]kgo.Offset{}
	for p := 0; p < *partitions; p++ {
		assign[int32(p)] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: assign}))
	if err != nil {
		fail("consumer: %v", err)
	}
	defer cons.Close()
	seen := make([]bool, *messages)
	lastOffset := map[int32]int64{}
	var diffs []string
	received, distinct := 0, 0
	for received < *messages {
		fetches := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("timeout after %d of %d records", received, *messages)
		}
		fetches.EachError(func(t string, p int32, err error) { fail("fetch %s/%d: %v", t, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			// (d) check it
			received++
			where := fmt.Sprintf("p%d@%d", r.Partition, r.Offset)
			if prev, ok := lastOffset[r.Partition]; ok && r.Offset <= prev {
				diffs = append(diffs, fmt.Sprintf("%s: offset not increasing (previous %d)", where, prev))
			}
			lastOffset[r.Partition] = r.Offset
			idx := ""
			for _, h := range r.Headers {
				if h.Key == "idx" {
					idx = string(h.Value)
				}
			}
			i, err := strconv.Atoi(idx)
			switch {
			case err != nil || i < 0 || i >= *messages:
				diffs = append(diffs, fmt.Sprintf("%s: bad idx header %q", where, idx))
			case seen[i]:
				diffs = append(diffs, fmt.Sprintf("%s: duplicate record idx %d", where, i))
			default:
				seen[i] = true
				distinct++
				s := recs[i]
				if string(r.Key) != s.key {
					diffs = append(diffs, fmt.Sprintf("%s: key %q != %q", where, r.Key, s.key))
				}
				if string(r.Value) != s.value {
					diffs = append(diffs, fmt.Sprintf("%s: value differs for idx %d", where, i))
				}
				if r.Partition != s.partition || r.Offset != s.offset {
					diffs = append(diffs, fmt.Sprintf("%s: idx %d was acked at p%d@%d", where, i, s.partition, s.offset))
				}
			}
		})
	}
	if distinct != *messages {
		diffs = append(diffs, fmt.Sprintf("received %d distinct of %d", distinct, *messages))
	}
	for i, d := range diffs {
		if i < 20 {
			fmt.Println("DIFF " + d)
		}
	}
	if len(diffs) > 0 {
		fail("%d difference(s)", len(diffs))
	}
	fmt.Printf("OK %d\n", *messages)
}
