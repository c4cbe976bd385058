package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/requester"
)

// runSubmit publishes a create request and, with --wait, follows it to its
// outcome.
func runSubmit(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "submit", `provisionctl submit: publish a create request.

  provisionctl submit --name web-01 --plan standard-4 --region eu-west-1 --image ubuntu-22.04 [--wait]
  provisionctl submit --file request.json [--wait]

Without --wait it prints the request_id. With --wait it prints each event of the
request (created, then the outcome) and the final event, and exits 0 when the
request completed, 1 when it failed or was rejected, 3 on --timeout.`)
	id := fs.String("request-id", "", "request_id, the idempotency key (default: a new random one; overrides the file's)")
	name := fs.String("name", "", "instance name")
	plan := fs.String("plan", "", "instance plan")
	region := fs.String("region", "", "region")
	image := fs.String("image", "", "image")
	var sshKeys, metadata multiFlag
	fs.Var(&sshKeys, "ssh-key", "SSH key (repeatable)")
	fs.Var(&metadata, "metadata", "metadata pair key=value, echoed in every event (repeatable)")
	file := fs.String("file", "", "read the request from this JSON file instead of the field flags")
	wait := fs.Bool("wait", false, "wait for the outcome, showing progress")
	asJSON := fs.Bool("json", false, "print events as JSON lines")
	timeout := fs.Duration("timeout", 20*time.Minute, "with --wait: how long to wait for the outcome")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "provisionctl submit: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(c.stderr, "provisionctl submit: --timeout must be positive")
		return exitUsage
	}

	var req jobs.Request
	var err error
	if *file != "" {
		if *name != "" || *plan != "" || *region != "" || *image != "" || len(sshKeys) > 0 || len(metadata) > 0 {
			fmt.Fprintln(c.stderr, "provisionctl submit: use either --file or the field flags, not both")
			return exitUsage
		}
		req, err = requestFromFile(*file, *id)
	} else {
		req, err = requestFromFlags(*id, *name, *plan, *region, *image, sshKeys, metadata)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "provisionctl submit: %v\n", err)
		return exitUsage
	}
	// Check before connecting, so that a bad request never waits for a server.
	if err := check(req); err != nil {
		fmt.Fprintf(c.stderr, "provisionctl submit: %v\n", err)
		return exitUsage
	}

	if err := c.connect(); err != nil {
		return c.fail(err)
	}
	r := requester.New(c.js, requester.Options{Subjects: c.subj, EventsStream: c.cfg.EventsStream})
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = r.Submit(sctx, req)
	cancel()
	if err != nil {
		return c.fail(err)
	}
	if !*wait {
		if *asJSON {
			out, _ := json.Marshal(map[string]string{"request_id": req.RequestID, "subject": c.subj.Create()})
			fmt.Fprintf(c.stdout, "%s\n", out)
		} else {
			fmt.Fprintln(c.stdout, req.RequestID)
		}
		return exitOK
	}

	if !*asJSON {
		fmt.Fprintf(c.stdout, "submitted %s on %s; waiting for its outcome\n", req.RequestID, c.subj.Create())
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	final, err := r.Watch(wctx, req.RequestID, func(ev jobs.Event) {
		if *asJSON {
			out, _ := json.Marshal(ev)
			fmt.Fprintf(c.stdout, "%s\n", out)
			return
		}
		fmt.Fprintln(c.stdout, ev.Summary())
	})
	if err != nil {
		if wctx.Err() != nil {
			fmt.Fprintf(c.stderr, "provisionctl submit: no outcome for %s after %s; it may still finish: provisionctl status %s\n", req.RequestID, *timeout, req.RequestID)
			return exitTimeout
		}
		return c.fail(err)
	}
	if !*asJSON {
		out, _ := json.MarshalIndent(final, "", "  ")
		fmt.Fprintf(c.stdout, "%s\n", out)
	}
	return exitForKind(final.Kind)
}

// requestFromFlags builds a request from the field flags.
func requestFromFlags(id, name, plan, region, image string, sshKeys, metadata []string) (jobs.Request, error) {
	var missing []string
	for _, f := range []struct{ flag, v string }{{"--name", name}, {"--plan", plan}, {"--region", region}, {"--image", image}} {
		if f.v == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return jobs.Request{}, fmt.Errorf("%s required (or --file)", strings.Join(missing, ", "))
	}
	if id == "" {
		id = newRequestID()
	}
	req := jobs.Request{RequestID: id, Name: name, Plan: plan, Region: region, Image: image, SSHKeys: sshKeys}
	for _, kv := range metadata {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return jobs.Request{}, fmt.Errorf("--metadata %q: want key=value", kv)
		}
		if req.Metadata == nil {
			req.Metadata = map[string]string{}
		}
		req.Metadata[k] = v
	}
	return req, nil
}

// requestFromFile reads a request from a JSON file; id, when set, replaces
// its request_id, and one is generated when it has none.
func requestFromFile(path, id string) (jobs.Request, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return jobs.Request{}, fmt.Errorf("read request: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return jobs.Request{}, fmt.Errorf("%s: not a JSON object", path)
	}
	if id == "" {
		if _, ok := raw["request_id"]; !ok {
			id = newRequestID()
		}
	}
	if id != "" {
		raw["request_id"], _ = json.Marshal(id)
		data, _ = json.Marshal(raw)
	}
	req, err := jobs.DecodeRequest(data)
	if err != nil {
		return jobs.Request{}, fmt.Errorf("%s: %w", path, err)
	}
	return req, nil
}

// check validates req as the worker will decode it, as Submit does, but
// before connecting.
func check(req jobs.Request) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = jobs.DecodeRequest(data)
	if jobs.IsReject(err) {
		return fmt.Errorf("request_id %q: must be 1 to 64 letters, digits, '_' or '-'", req.RequestID)
	}
	return err
}

// newRequestID returns a random request_id.
func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "req-" + hex.EncodeToString(b)
}
