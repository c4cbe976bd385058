package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/internal/jstest"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/schema"
	"github.com/cloudnexus/provisioner/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a real pipeline for provisionctl to talk to: an in-process NATS
// server with JetStream, the simulator and a worker.
type env struct {
	url string
	js  jetstream.JetStream
	sim *cnsim.Server
}

type envConfig struct {
	subjects       jobs.Subjects
	eventsStream   string
	requestsStream string
	bucket         string
	provisionDelay time.Duration
}

func newEnv(t *testing.T, ec envConfig) *env {
	t.Helper()
	ns := jstest.Run(t, "")
	_, js := jstest.Connect(t, ns)
	if ec.provisionDelay == 0 {
		ec.provisionDelay = 100 * time.Millisecond
	}
	sim, err := cnsim.Start(cnsim.Config{ProvisionDelay: ec.provisionDelay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	api, err := apiclient.New(apiclient.Config{BaseURL: sim.URL(), APIKey: cnsim.DefaultAPIKey, RetryInitial: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	w, err := worker.New(worker.Config{
		JetStream: js, API: api, ManageStreams: true,
		Subjects: ec.subjects, EventsStream: ec.eventsStream, RequestsStream: ec.requestsStream, KVBucket: ec.bucket,
		PollInitial: 20 * time.Millisecond, PollMax: 100 * time.Millisecond,
		FetchMaxWait: 200 * time.Millisecond, ShutdownTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); w.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready: %v", w.Ready())
		}
	}
	return &env{url: ns.ClientURL(), js: js, sim: sim}
}

// syncBuffer is a bytes.Buffer safe to write from a command running on
// another goroutine while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what one run of provisionctl did.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(args ...string) result {
	var stdout, stderr syncBuffer
	code := run(context.Background(), args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// run runs provisionctl against the env's server.
func (e *env) run(args ...string) result {
	return runCLI(append([]string{"--nats-url", e.url}, args...)...)
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

var submitArgs = []string{"--plan", "standard-4", "--region", "eu-west-1", "--image", "ubuntu-22.04"}

func submit(id, name string, extra ...string) []string {
	return append(append([]string{"submit", "--request-id", id, "--name", name}, submitArgs...), extra...)
}

// jsonLines decodes stdout as JSON events, checking each against its schema.
func jsonLines(t *testing.T, out string) []jobs.Event {
	t.Helper()
	var evs []jobs.Event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		if err := schema.ValidateEvent([]byte(line)); err != nil {
			t.Errorf("line %s: %v", line, err)
		}
		var ev jobs.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func kinds(evs []jobs.Event) string {
	var ks []string
	for _, ev := range evs {
		ks = append(ks, string(ev.Kind))
	}
	return strings.Join(ks, " ")
}

// TestUsage checks the errors found before connecting: each exits 2 (or 0
// for help) without a server, which would exit 5.
func TestUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := dir + "/bad.json"
	if err := os.WriteFile(bad, []byte(`{"request_id":"req-1","name":"","plan":"standard-4","region":"eu-west-1","image":"debian-12"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, exitUsage, "", "Usage:"},
		{"help", []string{"help"}, exitOK, "Exit codes:", ""},
		{"-h", []string{"-h"}, exitOK, "", "Exit codes:"},
		{"unknown command", []string{"provision"}, exitUsage, "", `unknown command "provision"`},
		{"unknown global flag", []string{"--server", "x", "list"}, exitUsage, "", "flag provided but not defined"},
		{"submit -h", []string{"submit", "-h"}, exitOK, "", "--wait"},
		{"submit unknown flag", []string{"submit", "--size", "xl"}, exitUsage, "", "flag provided but not defined"},
		{"submit missing fields", []string{"submit", "--name", "web-01"}, exitUsage, "", "--plan, --region, --image required"},
		{"submit bad metadata", append(submit("req-1", "web-01"), "--metadata", "team"), exitUsage, "", `--metadata "team": want key=value`},
		{"submit bad request_id", submit("req 1", "web-01"), exitUsage, "", `request_id "req 1"`},
		{"submit blank name", submit("req-1", " "), exitUsage, "", "name: must not be empty"},
		{"submit file and flags", []string{"submit", "--file", bad, "--name", "x"}, exitUsage, "", "either --file or the field flags"},
		{"submit invalid file", []string{"submit", "--file", bad}, exitUsage, "", "name: must not be empty"},
		{"submit missing file", []string{"submit", "--file", dir + "/none.json"}, exitUsage, "", "no such file"},
		{"submit argument", append(submit("req-1", "web-01"), "extra"), exitUsage, "", `unexpected argument "extra"`},
		{"status without id", []string{"status"}, exitUsage, "", "want one request_id"},
		{"status bad id", []string{"status", "a.b"}, exitUsage, "", `"a.b" is not a request_id`},
		{"watch --all and --since", []string{"watch", "--all", "--since", "1h"}, exitUsage, "", "exclude each other"},
		{"watch bad id", []string{"watch", "--request-id", "*"}, exitUsage, "", "not a request_id"},
		{"list bad phase", []string{"list", "--phase", "running"}, exitUsage, "", `--phase "running"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Nothing listens there: reaching the connect step would exit 5.
			r := runCLI(append([]string{"--nats-url", "nats://127.0.0.1:1"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("got %s\nwant exit %d, stdout with %q, stderr with %q", r, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// TestUnreachable checks exit 5 when no NATS server answers, with the URL
// in the message but not its password.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		submit("req-1", "web-01"),
		{"status", "req-1"},
		{"watch"},
		{"list"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			r := runCLI(append([]string{"--nats-url", "nats://user:s3cret@127.0.0.1:1"}, args...)...)
			if r.code != exitUnreachable || !strings.Contains(r.stderr, "cannot connect to NATS") {
				t.Errorf("got %s", r)
			}
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("the password is printed: %s", r.stderr)
			}
		})
	}
}

// TestConfigErrors checks that a bad variable stops provisionctl with exit
// 2 and its name. It sets the environment, so it does not run in parallel.
func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, variable, value string }{
		{"prefix with a wildcard", "PROVISIONER_SUBJECT_PREFIX", "provision.*"},
		{"bucket with a dot", "PROVISIONER_KV_BUCKET", "jobs.v1"},
		{"events stream empty", "PROVISIONER_EVENTS_STREAM", ""},
		{"cert without key", "NATS_CERT", "/tmp/cert.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.variable, tt.value)
			r := runCLI("status", "req-1")
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.variable) {
				t.Errorf("got %s", r)
			}
		})
	}
}

// TestSubmit submits requests to a real worker and checks what is printed
// and the exit code, for each way of submitting.
func TestSubmit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	dir := t.TempDir()
	file := dir + "/request.json"
	if err := os.WriteFile(file, []byte(`{"name":"from-file","plan":"standard-4","region":"us-east-1","image":"debian-12","metadata":{"team":"storefront"},"priority":"high"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		// Strings stdout must hold, in order.
		want []string
	}{
		{
			name: "wait for success",
			args: submit("req-ok", "web-ok", "--wait", "--metadata", "team=payments", "--ssh-key", "ssh_key_a", "--ssh-key", "ssh_key_b"),
			code: exitOK,
			want: []string{"submitted req-ok on provision.requests.create", `created   req-ok  inst_`, `"web-ok" pending`,
				`completed req-ok  inst_`, `"web-ok" running 10.0.0.`, `metadata {"team":"payments"}`, `"kind": "completed"`},
		},
		{
			name: "wait for failure",
			args: []string{"submit", "--request-id", "req-mars", "--name", "web-mars", "--plan", "standard-4", "--region", "mars-1", "--image", "ubuntu-22.04", "--wait"},
			code: exitFailed,
			want: []string{"failed    req-mars  VALIDATION_ERROR: Invalid region specified", `"code": "VALIDATION_ERROR"`, `"http_status": 400`},
		},
		{
			name: "file",
			args: []string{"submit", "--file", file, "--request-id", "req-file", "--wait"},
			code: exitOK,
			want: []string{"completed req-file", `"from-file" running`, `metadata {"team":"storefront"}`},
		},
		{
			name: "no wait",
			args: submit("req-nowait", "web-nowait"),
			code: exitOK,
			want: []string{"req-nowait\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.run(tt.args...)
			if r.code != tt.code {
				t.Errorf("got %s\nwant exit %d", r, tt.code)
			}
			rest := r.stdout
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stdout lacks %q after what came before:\n%s", w, r.stdout)
					break
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestSubmitJSON checks --wait --json: one JSON event per line, each valid
// against its schema, and nothing else on stdout.
func TestSubmitJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	r := e.run(submit("req-json", "web-json", "--wait", "--json")...)
	if r.code != exitOK {
		t.Fatalf("got %s", r)
	}
	evs := jsonLines(t, r.stdout)
	if kinds(evs) != "created completed" || evs[1].Instance.Name != "web-json" {
		t.Errorf("events %s: %s", kinds(evs), r.stdout)
	}

	// A generated request_id, printed alone so that a script can keep it.
	r = e.run("submit", "--name", "web-gen", "--plan", "standard-4", "--region", "eu-west-1", "--image", "debian-12")
	id := strings.TrimSpace(r.stdout)
	if r.code != exitOK || !regexp.MustCompile(`^req-[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("got %s", r)
	}
	r = e.run("watch", "--all", "--json", "--request-id", id, "--limit", "2", "--timeout", "30s")
	if evs := jsonLines(t, r.stdout); r.code != exitOK || kinds(evs) != "created completed" || evs[0].RequestID != id {
		t.Errorf("watch of the generated id: %s", r)
	}
}

// TestSubmitTimeout checks exit 3 when the outcome does not come in time:
// the simulator keeps the instance pending for an hour.
func TestSubmitTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{provisionDelay: time.Hour})
	r := e.run(submit("req-slow", "web-slow", "--wait", "--timeout", "2s")...)
	if r.code != exitTimeout || !strings.Contains(r.stderr, "no outcome for req-slow after 2s") {
		t.Errorf("got %s", r)
	}
	// It is still in progress; status says so with exit 0.
	r = e.run("status", "req-slow")
	if r.code != exitOK || !regexp.MustCompile(`phase +polling`).MatchString(r.stdout) || !strings.Contains(r.stdout, "- (in progress)") {
		t.Errorf("status: %s", r)
	}
}

// TestStatus checks status for a completed, a failed and an unknown request.
func TestStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	if r := e.run(submit("req-done", "web-done", "--wait")...); r.code != exitOK {
		t.Fatalf("submit: %s", r)
	}
	if r := e.run("submit", "--request-id", "req-failed", "--name", "web-f", "--plan", "standard-4", "--region", "mars-1", "--image", "x", "--wait"); r.code != exitFailed {
		t.Fatalf("submit: %s", r)
	}
	inst := e.sim.Instances()
	if len(inst) != 1 {
		t.Fatalf("simulator holds %d instances, want 1", len(inst))
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string // regular expressions stdout must match
	}{
		{"completed", []string{"status", "req-done"}, exitOK, []string{
			`request_id +req-done\n`, `phase +done\n`, `instance +` + inst[0].ID + ` \(created `, `attempts +0\n`,
			`api calls +[1-9]`, `lease +none\n`, `last error +-\n`, `outcome +completed req-done  ` + inst[0].ID + ` "web-done" running`,
		}},
		{"failed", []string{"status", "req-failed"}, exitFailed, []string{
			`phase +done\n`, `instance +- \(create started `, `outcome +failed +req-failed  VALIDATION_ERROR`,
		}},
		{"json, flags after the id", []string{"status", "req-done", "--json"}, exitOK, []string{
			`"request_id":"req-done","phase":"done"`, `"instance_id":"` + inst[0].ID + `"`, `"terminal_event":\{"request_id":"req-done","kind":"completed"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(tt.args...)
			if r.code != tt.code {
				t.Errorf("got %s\nwant exit %d", r, tt.code)
			}
			for _, w := range tt.want {
				if !regexp.MustCompile(w).MatchString(r.stdout) {
					t.Errorf("stdout does not match %s:\n%s", w, r.stdout)
				}
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		r := e.run("status", "req-never")
		if r.code != exitNotFound || r.stdout != "" || !strings.Contains(r.stderr, "no job with request_id req-never in bucket provision_jobs") {
			t.Errorf("got %s", r)
		}
	})
}

// TestList checks list's table, filters and JSON lines.
func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, args := range [][]string{
		submit("req-a", "web-a", "--wait"),
		{"submit", "--request-id", "req-b", "--name", "web-b", "--plan", "standard-4", "--region", "mars-1", "--image", "x", "--wait"},
		submit("req-c", "web-c", "--wait"),
	} {
		if r := e.run(args...); r.code == exitUsage || r.code > exitUsage {
			t.Fatalf("submit: %s", r)
		}
	}
	tests := []struct {
		name string
		args []string
		want []string // regular expressions stdout must match, in order
	}{
		{"all", []string{"list"}, []string{
			`REQUEST_ID +PHASE +OUTCOME +INSTANCE +ATTEMPTS +AGE\n`,
			`req-c +done +completed +inst_\w+ +0 +\d+s\n`,
			`req-b +done +failed:VALIDATION_ERROR +- +0 +\d+s\n`,
			`req-a +done +completed +inst_\w+ +0 +\d+s\n`,
			`3 of 3 jobs; 0 requests not yet acknowledged in PROVISION_REQUESTS\n$`,
		}},
		{"limit", []string{"list", "--limit", "1"}, []string{`\nreq-c `, `1 of 3 jobs;`}},
		{"done", []string{"list", "--phase", "done"}, []string{`3 of 3 jobs;`}},
		{"active", []string{"list", "--phase", "active"}, []string{`^REQUEST_ID[^\n]*\n0 of 0 jobs \(3 in the bucket\);`}},
		{"json", []string{"list", "--json", "--limit", "2"}, []string{
			`^\{"request_id":"req-c","phase":"done",[^\n]*"terminal_event":\{[^\n]*\}\n`,
			`^\{"request_id":"req-b","phase":"done",[^\n]*"code":"VALIDATION_ERROR"[^\n]*\}\n$`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(tt.args...)
			if r.code != exitOK {
				t.Errorf("got %s", r)
			}
			rest := r.stdout
			for _, w := range tt.want {
				loc := regexp.MustCompile(w).FindStringIndex(rest)
				if loc == nil {
					t.Errorf("stdout does not match %s after what came before:\n%s", w, r.stdout)
					break
				}
				rest = rest[loc[1]:]
			}
		})
	}
}

// TestWatch checks replayed and live events, human and JSON, and how watch
// ends.
func TestWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	if r := e.run(submit("req-1", "web-1", "--wait")...); r.code != exitOK {
		t.Fatalf("submit: %s", r)
	}
	if r := e.run(submit("req-2", "web-2", "--wait")...); r.code != exitOK {
		t.Fatalf("submit: %s", r)
	}

	t.Run("replay all, human", func(t *testing.T) {
		r := e.run("watch", "--all", "--limit", "4")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (created   req-[12]  inst_\w+ "web-[12]" pending|completed req-[12]  inst_\w+ "web-[12]" running .* API calls)$`)
		if r.code != exitOK || len(lines) != 4 {
			t.Fatalf("got %s", r)
		}
		for _, l := range lines {
			if !line.MatchString(l) {
				t.Errorf("line %q", l)
			}
		}
	})
	t.Run("one request, JSON", func(t *testing.T) {
		r := e.run("watch", "--all", "--json", "--request-id", "req-2", "--limit", "2")
		if evs := jsonLines(t, r.stdout); r.code != exitOK || kinds(evs) != "created completed" || evs[0].RequestID != "req-2" || evs[1].RequestID != "req-2" {
			t.Errorf("got %s", r)
		}
	})
	t.Run("since", func(t *testing.T) {
		r := e.run("watch", "--since", "1h", "--json", "--limit", "4")
		if evs := jsonLines(t, r.stdout); r.code != exitOK || len(evs) != 4 {
			t.Errorf("got %s", r)
		}
	})
	t.Run("limit not reached", func(t *testing.T) {
		r := e.run("watch", "--all", "--json", "--request-id", "req-1", "--limit", "3", "--timeout", "1s")
		if evs := jsonLines(t, r.stdout); r.code != exitTimeout || len(evs) != 2 || !strings.Contains(r.stderr, "2 of 3 events in 1s") {
			t.Errorf("got %s", r)
		}
	})
	t.Run("timeout without limit", func(t *testing.T) {
		r := e.run("watch", "--timeout", "500ms")
		if r.code != exitOK || r.stdout != "" {
			t.Errorf("got %s", r)
		}
	})
	t.Run("new events only", func(t *testing.T) {
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(context.Background(), []string{"--nats-url", e.url, "watch", "--json", "--limit", "2", "--timeout", "30s"}, &stdout, &stderr)
		}()
		// Publish once watch's consumer exists: the two old requests' events
		// must not show.
		s, err := e.js.Stream(context.Background(), "PROVISION_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			info, err := s.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Consumers > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("watch did not start")
			}
		}
		if r := e.run(submit("req-3", "web-3")...); r.code != exitOK {
			t.Fatalf("submit: %s", r)
		}
		code := <-done
		if evs := jsonLines(t, stdout.String()); code != exitOK || kinds(evs) != "created completed" || evs[0].RequestID != "req-3" {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	})
}

// TestEnvironment checks that provisionctl finds a worker configured with
// other names through the worker's variables, NATS_URL among them. It sets
// the environment, so it does not run in parallel.
func TestEnvironment(t *testing.T) {
	e := newEnv(t, envConfig{
		subjects:       jobs.Subjects{Prefix: "staging.provision"},
		eventsStream:   "STAGING_EVENTS",
		requestsStream: "STAGING_REQUESTS",
		bucket:         "staging_jobs",
	})
	t.Setenv("NATS_URL", e.url)
	t.Setenv("PROVISIONER_SUBJECT_PREFIX", "staging.provision")
	t.Setenv("PROVISIONER_EVENTS_STREAM", "STAGING_EVENTS")
	t.Setenv("PROVISIONER_REQUESTS_STREAM", "STAGING_REQUESTS")
	t.Setenv("PROVISIONER_KV_BUCKET", "staging_jobs")
	if r := runCLI(submit("req-env", "web-env", "--wait")...); r.code != exitOK || !strings.Contains(r.stdout, "submitted req-env on staging.provision.requests.create") {
		t.Errorf("submit: %s", r)
	}
	if r := runCLI("status", "req-env"); r.code != exitOK {
		t.Errorf("status: %s", r)
	}
	if r := runCLI("list"); r.code != exitOK || !strings.Contains(r.stdout, "1 of 1 jobs; 0 requests not yet acknowledged in STAGING_REQUESTS") {
		t.Errorf("list: %s", r)
	}

	// With the default names, nothing matches the worker's: exit 2 each.
	t.Setenv("PROVISIONER_SUBJECT_PREFIX", "provision")
	t.Setenv("PROVISIONER_EVENTS_STREAM", "PROVISION_EVENTS")
	t.Setenv("PROVISIONER_KV_BUCKET", "provision_jobs")
	for _, args := range [][]string{submit("req-env2", "web-env2"), {"status", "req-env"}, {"list"}, {"watch", "--all"}} {
		if r := runCLI(args...); r.code != exitUsage || !strings.Contains(r.stderr, "same PROVISIONER_* names") {
			t.Errorf("%s: %s", args[0], r)
		}
	}
}
