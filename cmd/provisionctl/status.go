package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// jobView is a job record as provisionctl prints it in JSON: the record's
// own fields, with the request_id and phase beside them.
type jobView struct {
	RequestID string `json:"request_id"`
	Phase     string `json:"phase"`
	worker.Record
}

// runStatus prints the job record of one request.
func runStatus(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "status", `provisionctl status <request_id>: show a request's job record from the KV bucket:
phase, instance, attempts, lease, last error and outcome.

Exits 0 when the request completed or is in progress, 1 when it failed, 4 when no
job has that request_id (not submitted, or not yet claimed by a worker).`)
	asJSON := fs.Bool("json", false, "print the record as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for NATS")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(c.stderr, "provisionctl status: want one request_id")
		return exitUsage
	}
	id := pos[0]
	if !jobs.ValidRequestID(id) {
		fmt.Fprintf(c.stderr, "provisionctl status: %q is not a request_id\n", id)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	kv, err := c.bucket(ctx)
	if err != nil {
		return c.fail(err)
	}
	entry, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		fmt.Fprintf(c.stderr, "provisionctl status: no job with request_id %s in bucket %s\n", id, c.cfg.KVBucket)
		return exitNotFound
	}
	if err != nil {
		return c.fail(fmt.Errorf("read job %s: %w", id, err))
	}
	var rec worker.Record
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		return c.fail(fmt.Errorf("decode job %s (revision %d): %w", id, entry.Revision(), err))
	}

	if *asJSON {
		out, _ := json.Marshal(jobView{RequestID: id, Phase: rec.Phase(), Record: rec})
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else {
		c.printRecord(id, &rec)
	}
	if len(rec.Terminal) > 0 {
		var ev jobs.Event
		if err := json.Unmarshal(rec.Terminal, &ev); err == nil {
			return exitForKind(ev.Kind)
		}
	}
	return exitOK
}

// printRecord prints a record as aligned "field value" lines.
func (c *cli) printRecord(id string, rec *worker.Record) {
	now := c.now()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	line("request_id", "%s", id)
	line("phase", "%s", rec.Phase())
	line("started", "%s (%s ago)", rec.StartedAt.UTC().Format(time.RFC3339), age(now, rec.StartedAt))
	switch {
	case rec.InstanceID != "":
		line("instance", "%s (created %s)", rec.InstanceID, rec.InstanceCreatedAt.UTC().Format(time.RFC3339))
	case !rec.CreateStartedAt.IsZero():
		line("instance", "- (create started %s)", rec.CreateStartedAt.UTC().Format(time.RFC3339))
	default:
		line("instance", "-")
	}
	line("attempts", "%d", rec.Attempts)
	line("api calls", "%d", rec.APICalls)
	switch {
	case rec.Owner == "":
		line("lease", "none")
	case rec.LeaseUntil.After(now):
		line("lease", "%s until %s (%s left)", rec.Owner, rec.LeaseUntil.UTC().Format(time.RFC3339), rec.LeaseUntil.Sub(now).Round(time.Second))
	default:
		line("lease", "%s, expired %s ago", rec.Owner, now.Sub(rec.LeaseUntil).Round(time.Second))
	}
	if rec.LastError != "" {
		line("last error", "%s", rec.LastError)
	} else {
		line("last error", "-")
	}
	if rec.StreamSequence != 0 {
		line("message", "sequence %d in %s", rec.StreamSequence, c.cfg.RequestsStream)
	}
	if len(rec.Terminal) > 0 {
		var ev jobs.Event
		if err := json.Unmarshal(rec.Terminal, &ev); err == nil {
			line("outcome", "%s", ev.Summary())
			line("finished", "%s", ev.Time.UTC().Format(time.RFC3339Nano))
		} else {
			line("outcome", "undecodable: %s", rec.Terminal)
		}
	} else {
		line("outcome", "- (in progress)")
	}
	_ = tw.Flush()
}
