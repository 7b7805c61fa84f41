// franz-group: a consumer-group member (franz-go kgo) for group tests: subscribes, prints
// every record it processes, then commits synchronously after each non-empty poll. Runs until
// --seconds elapse or SIGTERM/SIGINT, then closes the client (leaving the group).
//
//	franz-group --bootstrap H:P --topic T --group G [--seconds S]
//
// Output lines (flushed each): "ASSIGNED p,p,", "R partition offset value", "COMMITTED",
// "COMMIT_FAILED why", "POLL_FAILED why".
//
// Rebalances are blocked while a polled batch is being processed and committed
// (BlockRebalanceOnPoll + AllowRebalance), franz-go's idiom for commit-after-processing.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...) // os.Stdout is unbuffered
}

func main() {
	bootstrap := flag.String("bootstrap", "", "host:port")
	topic := flag.String("topic", "", "topic to subscribe to")
	group := flag.String("group", "", "group id")
	seconds := flag.Float64("seconds", 120, "run time")
	flag.Parse()
	if *bootstrap == "" || *topic == "" || *group == "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, time.Duration(*seconds*float64(time.Second)))
	defer cancelRun()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			parts := append([]int32(nil), m[*topic]...)
			sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
			var sb strings.Builder
			for _, p := range parts {
				fmt.Fprintf(&sb, "%d,", p)
			}
			say("ASSIGNED %s", sb.String())
		}),
	)
	if err != nil {
		say("FAIL client: %v", err)
		os.Exit(1)
	}
	for ctx.Err() == nil {
		pollCtx, pollCancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cl.PollRecords(pollCtx, 500)
		pollCancel()
		fetches.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded && err != context.Canceled {
				say("POLL_FAILED %s[%d]: %v", t, p, err)
			}
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			say("R %d %d %s", r.Partition, r.Offset, r.Value)
			n++
		})
		if n > 0 {
			commitCtx, commitCancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := cl.CommitUncommittedOffsets(commitCtx); err != nil {
				say("COMMIT_FAILED %v", err)
			} else {
				say("COMMITTED")
			}
			commitCancel()
		}
		cl.AllowRebalance()
	}
	cl.CloseAllowingRebalance()
	say("CLOSED")
}
