package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/jobs"
)

// runWatch prints events as they are stored in the events stream.
func runWatch(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "watch", `provisionctl watch: follow events from the events stream, of every request or of
one, as readable lines or JSON lines. By default only new events; --all or --since
replay stored ones first.

Ends on interrupt (exit 0), after --limit events (exit 0), or at --timeout (exit 0,
or 3 when --limit events had not come).`)
	id := fs.String("request-id", "", "only the events of this request")
	asJSON := fs.Bool("json", false, "print each event as it was published, one JSON object per line")
	all := fs.Bool("all", false, "replay every stored event first")
	since := fs.Duration("since", 0, "replay the events of this last period first (e.g. 1h)")
	limit := fs.Int("limit", 0, "stop after this many events (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until interrupted)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		fmt.Fprintf(c.stderr, "provisionctl watch: unexpected argument %q (use --request-id)\n", pos[0])
		return exitUsage
	case *id != "" && !jobs.ValidRequestID(*id):
		fmt.Fprintf(c.stderr, "provisionctl watch: %q is not a request_id\n", *id)
		return exitUsage
	case *all && *since != 0:
		fmt.Fprintln(c.stderr, "provisionctl watch: --all and --since exclude each other")
		return exitUsage
	case *since < 0 || *limit < 0 || *timeout < 0:
		fmt.Fprintln(c.stderr, "provisionctl watch: --since, --limit and --timeout must not be negative")
		return exitUsage
	}

	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{c.subj.Events()}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if *id != "" {
		cfg.FilterSubjects = []string{c.subj.EventsFor(*id)}
	}
	switch {
	case *all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case *since > 0:
		start := c.now().Add(-*since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}

	if err := c.connect(); err != nil {
		return c.fail(err)
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	cons, err := c.js.OrderedConsumer(ctx, c.cfg.EventsStream, cfg)
	if err != nil {
		return c.fail(fmt.Errorf("stream %s: %w", c.cfg.EventsStream, err))
	}
	defer func() {
		// Remove the consumer now rather than after its inactivity threshold.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = c.js.DeleteConsumer(dctx, c.cfg.EventsStream, info.Name)
		}
	}()
	it, err := cons.Messages()
	if err != nil {
		return c.fail(err)
	}
	defer it.Stop()

	for n := 0; *limit == 0 || n < *limit; n++ {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded) && *limit > 0:
				fmt.Fprintf(c.stderr, "provisionctl watch: %d of %d events in %s\n", n, *limit, *timeout)
				return exitTimeout
			case ctx.Err() != nil:
				return exitOK
			}
			return c.fail(err)
		}
		if *asJSON {
			fmt.Fprintf(c.stdout, "%s\n", msg.Data())
			continue
		}
		var ev jobs.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			fmt.Fprintf(c.stdout, "undecodable event on %s: %s\n", msg.Subject(), msg.Data())
			continue
		}
		fmt.Fprintf(c.stdout, "%s %s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Summary())
	}
	return exitOK
}
