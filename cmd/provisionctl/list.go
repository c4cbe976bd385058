package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/worker"
)

// runList prints the jobs of the job state bucket, the most recent first.
func runList(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "list", `provisionctl list: list jobs from the job state bucket, the most recently started
first: request_id, phase, outcome, instance, attempts, age. A request no worker has
claimed yet has no job; the number of requests in the requests stream (waiting or
in progress) is printed at the end.`)
	phase := fs.String("phase", "", "only jobs in this phase: claimed, creating, polling, done, or active (any but done)")
	limit := fs.Int("limit", 50, "at most this many jobs (0: all)")
	asJSON := fs.Bool("json", false, "print each job as a JSON line")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for NATS")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	// A record's phase, or active for any phase but done.
	phases := []string{"claimed", "creating", "polling", "done", "active"}
	switch {
	case len(pos) > 0:
		fmt.Fprintf(c.stderr, "provisionctl list: unexpected argument %q\n", pos[0])
		return exitUsage
	case *phase != "" && !slices.Contains(phases, *phase):
		fmt.Fprintf(c.stderr, "provisionctl list: --phase %q: want one of %v\n", *phase, phases)
		return exitUsage
	case *limit < 0:
		fmt.Fprintln(c.stderr, "provisionctl list: --limit must not be negative")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	kv, err := c.bucket(ctx)
	if err != nil {
		return c.fail(err)
	}
	views, err := readJobs(ctx, kv)
	if err != nil {
		return c.fail(fmt.Errorf("read bucket %s: %w", c.cfg.KVBucket, err))
	}

	total := len(views)
	views = slices.DeleteFunc(views, func(v jobView) bool {
		return *phase != "" && !(v.Phase == *phase || *phase == "active" && v.Phase != "done")
	})
	slices.SortFunc(views, func(a, b jobView) int {
		if d := b.StartedAt.Compare(a.StartedAt); d != 0 {
			return d
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	matched := len(views)
	if *limit > 0 && len(views) > *limit {
		views = views[:*limit]
	}

	if *asJSON {
		for _, v := range views {
			out, _ := json.Marshal(v)
			fmt.Fprintf(c.stdout, "%s\n", out)
		}
		return exitOK
	}
	now := c.now()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST_ID\tPHASE\tOUTCOME\tINSTANCE\tATTEMPTS\tAGE")
	for _, v := range views {
		dash := func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", v.RequestID, v.Phase, dash(outcome(v.Terminal)), dash(v.InstanceID), v.Attempts, age(now, v.StartedAt))
	}
	_ = tw.Flush()
	fmt.Fprintf(c.stdout, "%d of %d jobs", len(views), matched)
	if matched != total {
		fmt.Fprintf(c.stdout, " (%d in the bucket)", total)
	}
	if waiting, ok := c.waiting(ctx); ok {
		fmt.Fprintf(c.stdout, "; %d requests not yet acknowledged in %s", waiting, c.cfg.RequestsStream)
	}
	fmt.Fprintln(c.stdout)
	return exitOK
}

// readJobs reads every record of the bucket with one watcher, which
// delivers the current values and then a nil entry.
func readJobs(ctx context.Context, kv jetstream.KeyValue) ([]jobView, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var views []jobView
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return views, nil
			}
			var rec worker.Record
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return nil, fmt.Errorf("decode job %s (revision %d): %w", e.Key(), e.Revision(), err)
			}
			views = append(views, jobView{RequestID: e.Key(), Phase: rec.Phase(), Record: rec})
		}
	}
}

// waiting returns the number of requests in the requests stream: waiting
// for a worker or in progress (with work-queue retention a request leaves
// the stream when acknowledged). ok is false when it cannot be read.
func (c *cli) waiting(ctx context.Context) (uint64, bool) {
	s, err := c.js.Stream(ctx, c.cfg.RequestsStream)
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, false
	}
	return info.State.Msgs, true
}
