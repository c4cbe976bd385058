package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/jobs"
)

// Exit codes, for scripts.
const (
	exitOK          = 0 // success; the request completed
	exitFailed      = 1 // the request failed or was rejected
	exitUsage       = 2 // bad usage or configuration
	exitTimeout     = 3 // timed out (or interrupted) waiting
	exitNotFound    = 4 // no such request
	exitUnreachable = 5 // NATS unreachable, or JetStream not answering
)

const usage = `provisionctl submits create requests to the provisioner and inspects them.

Usage:
  provisionctl [--nats-url URL] <command> [flags]

Commands:
  submit               publish a create request (field flags or --file);
                       --wait follows it to its outcome
  status <request_id>  show a request's job record: phase, instance, attempts, lease, outcome
  watch                follow events, of every request or of one (--request-id)
  list                 list in-flight and recent jobs from the job state bucket

"provisionctl <command> -h" lists the command's flags.

Environment (the worker's names):
  NATS_URL                     NATS servers (default nats://127.0.0.1:4222); --nats-url overrides it
  NATS_CREDS, NATS_CA,
  NATS_CERT, NATS_KEY          credentials file and TLS files
  PROVISIONER_SUBJECT_PREFIX   subject prefix (default provision)
  PROVISIONER_EVENTS_STREAM    events stream (default PROVISION_EVENTS)
  PROVISIONER_REQUESTS_STREAM  requests stream (default PROVISION_REQUESTS)
  PROVISIONER_KV_BUCKET        job state bucket (default provision_jobs)

Exit codes:
  0  success: submitted; with --wait the request completed; status of a request
     that completed or is in progress
  1  the request failed or was rejected (submit --wait, status)
  2  usage or configuration error: bad flag, invalid request, unknown stream or bucket
  3  timed out (or interrupted) waiting (submit --wait, watch --limit)
  4  not found: status of an unknown request_id
  5  NATS unreachable, or JetStream not answering
`

// config is what provisionctl reads from the environment: the variables of
// the worker it talks to (docs/CONTRACT.md).
type config struct {
	NATSURL   string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	NATSCreds string `envconfig:"NATS_CREDS"`
	NATSCA    string `envconfig:"NATS_CA"`
	NATSCert  string `envconfig:"NATS_CERT"`
	NATSKey   string `envconfig:"NATS_KEY"`

	SubjectPrefix  string `envconfig:"PROVISIONER_SUBJECT_PREFIX" default:"provision"`
	EventsStream   string `envconfig:"PROVISIONER_EVENTS_STREAM" default:"PROVISION_EVENTS"`
	RequestsStream string `envconfig:"PROVISIONER_REQUESTS_STREAM" default:"PROVISION_REQUESTS"`
	KVBucket       string `envconfig:"PROVISIONER_KV_BUCKET" default:"provision_jobs"`
}

func (c *config) validate() error {
	var errs []error
	if strings.TrimSpace(c.NATSURL) == "" {
		errs = append(errs, errors.New("NATS_URL must not be empty"))
	}
	if (c.NATSCert == "") != (c.NATSKey == "") {
		errs = append(errs, errors.New("NATS_CERT and NATS_KEY must be set together"))
	}
	if p := c.SubjectPrefix; p == "" || strings.ContainsAny(p, " \t*>") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
		errs = append(errs, fmt.Errorf("PROVISIONER_SUBJECT_PREFIX must be a subject prefix without wildcards or spaces, got %q", p))
	}
	for _, n := range []struct{ name, v string }{
		{"PROVISIONER_EVENTS_STREAM", c.EventsStream}, {"PROVISIONER_REQUESTS_STREAM", c.RequestsStream},
		{"PROVISIONER_KV_BUCKET", c.KVBucket},
	} {
		if !jobs.ValidRequestID(n.v) { // the alphabet NATS names need
			errs = append(errs, fmt.Errorf("%s must be 1 to 64 letters, digits, '-' or '_', got %q", n.name, n.v))
		}
	}
	return errors.Join(errs...)
}

// cli is one invocation: its configuration, output and connection.
type cli struct {
	cfg    config
	subj   jobs.Subjects
	stdout io.Writer
	stderr io.Writer
	nc     *nats.Conn
	js     jetstream.JetStream
	now    func() time.Time
}

// command is one subcommand: it parses its own arguments and returns the
// exit code.
type command func(ctx context.Context, c *cli, args []string) int

// lookup returns the command called name, or nil.
func lookup(name string) command {
	switch name {
	case "submit":
		return runSubmit
	case "status":
		return runStatus
	case "watch":
		return runWatch
	case "list":
		return runList
	}
	return nil
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provisionctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	natsURL := fs.String("nats-url", "", "NATS servers, comma-separated (overrides NATS_URL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	name := fs.Arg(0)
	if name == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "provisionctl: unknown command %q (submit, status, watch, list)\n", name)
		return exitUsage
	}

	c := &cli{stdout: stdout, stderr: stderr, now: time.Now}
	if err := envconfig.Process("", &c.cfg); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: cannot parse as %s", pe.KeyName, pe.TypeName)
		}
		fmt.Fprintf(stderr, "provisionctl: configuration: %v\n", err)
		return exitUsage
	}
	if *natsURL != "" {
		c.cfg.NATSURL = *natsURL
	}
	if err := c.cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "provisionctl: configuration: %v\n", err)
		return exitUsage
	}
	c.subj = jobs.Subjects{Prefix: c.cfg.SubjectPrefix}
	defer c.close()
	return cmd(ctx, c, fs.Args()[1:])
}

// connect connects to NATS once; a command calls it after parsing its flags,
// so that a usage error never waits for a server.
// bucket connects to NATS and opens the jobs' bucket.
func (c *cli) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	if err := c.connect(); err != nil {
		return nil, err
	}
	kv, err := c.js.KeyValue(ctx, c.cfg.KVBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", c.cfg.KVBucket, err)
	}
	return kv, nil
}

func (c *cli) connect() error {
	opts := []nats.Option{nats.Name("provisionctl"), nats.Timeout(5 * time.Second)}
	if c.cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.cfg.NATSCreds))
	}
	if c.cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(c.cfg.NATSCA))
	}
	if c.cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(c.cfg.NATSCert, c.cfg.NATSKey))
	}
	nc, err := nats.Connect(c.cfg.NATSURL, opts...)
	if err != nil {
		return &unreachableError{err}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return &unreachableError{err}
	}
	c.nc, c.js = nc, js
	return nil
}

func (c *cli) close() {
	if c.nc != nil {
		c.nc.Close()
	}
}

// unreachableError is a failure to connect to NATS.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string {
	return "cannot connect to NATS: " + e.err.Error()
}
func (e *unreachableError) Unwrap() error { return e.err }

// fail prints err and returns the exit code it calls for. Missing streams and
// buckets are configuration errors: the names do not match the worker's, or
// the worker never ran against this server.
func (c *cli) fail(err error) int {
	var ue *unreachableError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "provisionctl: %v (NATS_URL %s)\n", err, c.natsURLForHumans())
		return exitUnreachable
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrNoStreamResponse):
		fmt.Fprintf(c.stderr, "provisionctl: %v: is the worker running against this server with the same PROVISIONER_* names?\n", err)
		return exitUsage
	}
	// Anything else failed on the way to or inside JetStream (not enabled,
	// not answering, no permission).
	fmt.Fprintf(c.stderr, "provisionctl: %v\n", err)
	return exitUnreachable
}

// natsURLForHumans is NATS_URL without any user or password in it.
func (c *cli) natsURLForHumans() string {
	parts := strings.Split(c.cfg.NATSURL, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			scheme := ""
			if j := strings.Index(p, "://"); j >= 0 && j < at {
				scheme = p[:j+3]
			}
			parts[i] = scheme + "[redacted]@" + p[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// newFlagSet returns a flag set for a subcommand whose -h prints summary and
// the flags.
func newFlagSet(c *cli, name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("provisionctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "%s\n\nFlags:\n", summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, letting flags also follow the positional
// arguments ("status req-1 --json"). It returns the positional arguments, or
// an exit code when parsing ended the command.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
