package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap/zapcore"

	"github.com/cloudnexus/provisioner/jobs"
)

// config is the worker's configuration, read from the environment. The
// variables and defaults are those of docs/CONTRACT.md.
type config struct {
	NATSURL   string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	NATSCreds string `envconfig:"NATS_CREDS"`
	NATSCA    string `envconfig:"NATS_CA"`
	NATSCert  string `envconfig:"NATS_CERT"`
	NATSKey   string `envconfig:"NATS_KEY"`

	APIURL string `envconfig:"CLOUDNEXUS_API_URL" default:"https://api.cloudnexus.io/v1"`
	APIKey secret `envconfig:"CLOUDNEXUS_API_KEY"`
	APIH2C bool   `envconfig:"CLOUDNEXUS_API_H2C" default:"false"`

	SubjectPrefix  string `envconfig:"PROVISIONER_SUBJECT_PREFIX" default:"provision"`
	RequestsStream string `envconfig:"PROVISIONER_REQUESTS_STREAM" default:"PROVISION_REQUESTS"`
	EventsStream   string `envconfig:"PROVISIONER_EVENTS_STREAM" default:"PROVISION_EVENTS"`
	Consumer       string `envconfig:"PROVISIONER_CONSUMER" default:"provisioner"`
	KVBucket       string `envconfig:"PROVISIONER_KV_BUCKET" default:"provision_jobs"`
	ManageStreams  bool   `envconfig:"PROVISIONER_MANAGE_STREAMS" default:"true"`
	StreamReplicas int    `envconfig:"PROVISIONER_STREAM_REPLICAS" default:"1"`

	Concurrency      int           `envconfig:"PROVISIONER_CONCURRENCY" default:"64"`
	AckWait          time.Duration `envconfig:"PROVISIONER_ACK_WAIT" default:"30s"`
	MaxDeliver       int           `envconfig:"PROVISIONER_MAX_DELIVER" default:"20"`
	HTTPTimeout      time.Duration `envconfig:"PROVISIONER_HTTP_TIMEOUT" default:"15s"`
	RetryInitial     time.Duration `envconfig:"PROVISIONER_RETRY_INITIAL" default:"500ms"`
	RetryMaxInterval time.Duration `envconfig:"PROVISIONER_RETRY_MAX_INTERVAL" default:"30s"`
	RetryMaxElapsed  time.Duration `envconfig:"PROVISIONER_RETRY_MAX_ELAPSED" default:"5m"`
	PollInitial      time.Duration `envconfig:"PROVISIONER_POLL_INITIAL" default:"1s"`
	PollMax          time.Duration `envconfig:"PROVISIONER_POLL_MAX" default:"15s"`
	ProvisionTimeout time.Duration `envconfig:"PROVISIONER_PROVISION_TIMEOUT" default:"15m"`
	DeleteOnFailure  bool          `envconfig:"PROVISIONER_DELETE_ON_FAILURE" default:"true"`
	ShutdownTimeout  time.Duration `envconfig:"PROVISIONER_SHUTDOWN_TIMEOUT" default:"25s"`

	HTTPAddr  string `envconfig:"PROVISIONER_HTTP_ADDR" default:":8081"`
	LogLevel  string `envconfig:"PROVISIONER_LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"PROVISIONER_LOG_FORMAT"` // json, or console in -dev
	Dev       bool   `envconfig:"PROVISIONER_DEV" default:"false"`
}

// secret is a string that never prints: the API key goes through fmt, zap
// and JSON as "[redacted]".
type secret string

func (s secret) String() string { return "[redacted]" }

// GoString keeps %#v from printing it.
func (s secret) GoString() string { return "[redacted]" }

// MarshalText keeps encoders from printing it.
func (s secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// configError is a bad configuration value; the program exits 2.
type configError struct{ err error }

func (e *configError) Error() string { return "configuration: " + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// loadConfig reads the environment through lookup and validates the result.
// Every error names the variable.
func loadConfig(dev bool) (*config, error) {
	var c config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			// Do not echo the value: it may be the key.
			return nil, &configError{fmt.Errorf("%s: cannot parse as %s", pe.KeyName, pe.TypeName)}
		}
		return nil, &configError{err}
	}
	c.Dev = c.Dev || dev
	if c.LogFormat == "" {
		c.LogFormat = "json"
		if c.Dev {
			c.LogFormat = "console"
		}
	}
	if err := c.validate(); err != nil {
		return nil, &configError{err}
	}
	return &c, nil
}

func (c *config) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...)))
	}
	if !c.Dev && strings.TrimSpace(string(c.APIKey)) == "" {
		bad("CLOUDNEXUS_API_KEY", "is required (except with -dev)")
	}
	if strings.TrimSpace(c.NATSURL) == "" {
		bad("NATS_URL", "must not be empty")
	}
	if !strings.HasPrefix(c.APIURL, "http://") && !strings.HasPrefix(c.APIURL, "https://") {
		bad("CLOUDNEXUS_API_URL", "must be an http or https URL, got %q", c.APIURL)
	}
	if c.APIH2C && !c.Dev && strings.HasPrefix(c.APIURL, "https://") {
		bad("CLOUDNEXUS_API_H2C", "is for an http:// CLOUDNEXUS_API_URL (over https HTTP/2 is negotiated with TLS)")
	}
	if (c.NATSCert == "") != (c.NATSKey == "") {
		bad("NATS_CERT", "and NATS_KEY must be set together")
	}
	for _, n := range []struct{ name, v string }{
		{"PROVISIONER_SUBJECT_PREFIX", c.SubjectPrefix},
	} {
		if n.v == "" || strings.ContainsAny(n.v, " \t*>") || strings.HasPrefix(n.v, ".") || strings.HasSuffix(n.v, ".") {
			bad(n.name, "must be a subject prefix without wildcards or spaces, got %q", n.v)
		}
	}
	for _, n := range []struct{ name, v string }{
		{"PROVISIONER_REQUESTS_STREAM", c.RequestsStream}, {"PROVISIONER_EVENTS_STREAM", c.EventsStream},
		{"PROVISIONER_CONSUMER", c.Consumer}, {"PROVISIONER_KV_BUCKET", c.KVBucket},
	} {
		if !jobs.ValidRequestID(n.v) { // same alphabet as NATS names need
			bad(n.name, "must be 1 to 64 letters, digits, '-' or '_', got %q", n.v)
		}
	}
	if c.RequestsStream == c.EventsStream {
		bad("PROVISIONER_EVENTS_STREAM", "must differ from PROVISIONER_REQUESTS_STREAM")
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("PROVISIONER_STREAM_REPLICAS", "must be 1 to 5, got %d", c.StreamReplicas)
	}
	if c.Concurrency < 1 || c.Concurrency > 100000 {
		bad("PROVISIONER_CONCURRENCY", "must be 1 to 100000, got %d", c.Concurrency)
	}
	if c.MaxDeliver < 1 {
		bad("PROVISIONER_MAX_DELIVER", "must be at least 1, got %d", c.MaxDeliver)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"PROVISIONER_ACK_WAIT", c.AckWait, time.Second},
		{"PROVISIONER_HTTP_TIMEOUT", c.HTTPTimeout, time.Millisecond},
		{"PROVISIONER_RETRY_INITIAL", c.RetryInitial, time.Millisecond},
		{"PROVISIONER_RETRY_MAX_INTERVAL", c.RetryMaxInterval, time.Millisecond},
		{"PROVISIONER_RETRY_MAX_ELAPSED", c.RetryMaxElapsed, time.Millisecond},
		{"PROVISIONER_POLL_INITIAL", c.PollInitial, time.Millisecond},
		{"PROVISIONER_POLL_MAX", c.PollMax, time.Millisecond},
		{"PROVISIONER_PROVISION_TIMEOUT", c.ProvisionTimeout, time.Second},
		{"PROVISIONER_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 0},
	} {
		if d.v < d.min {
			bad(d.name, "must be at least %s, got %s", d.min, d.v)
		}
	}
	if c.RetryMaxInterval < c.RetryInitial {
		bad("PROVISIONER_RETRY_MAX_INTERVAL", "must be at least PROVISIONER_RETRY_INITIAL")
	}
	if c.PollMax < c.PollInitial {
		bad("PROVISIONER_POLL_MAX", "must be at least PROVISIONER_POLL_INITIAL")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("PROVISIONER_HTTP_ADDR", "must be host:port, got %q", c.HTTPAddr)
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		bad("PROVISIONER_LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("PROVISIONER_LOG_FORMAT", "must be json or console, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}
