package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/internal/jstest"
	"github.com/cloudnexus/provisioner/jobs"
)

// waitFor bounds every wait of these tests for a program to start, become
// ready or answer: generous, because the machine may be slow; it is a
// ceiling, not a measure.
const waitFor = 90 * time.Second

// programs are the binaries built from cmd/.
type programs struct {
	provisioner, cnsim string
}

// buildPrograms builds cmd/provisioner and cmd/cnsim. It builds them the
// way this test binary was built (race detector, cgo), not the image's way,
// so that the packages the test run compiled already are reused from the
// build cache instead of compiled a second time.
func buildPrograms(t *testing.T) programs {
	t.Helper()
	// go test puts its own toolchain first on the PATH of the tests.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	env := os.Environ()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "-race":
				if s.Value == "true" {
					args = append(args, "-race")
				}
			case "CGO_ENABLED":
				env = append(env, "CGO_ENABLED="+s.Value)
			}
		}
	}
	cmd := exec.Command(goBin, append(args, "./cmd/provisioner", "./cmd/cnsim")...)
	cmd.Dir = root
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return programs{provisioner: filepath.Join(dir, "provisioner"), cnsim: filepath.Join(dir, "cnsim")}
}

// syncBuffer collects a program's output while the test reads it.
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

// process is a running program. Its output never holds the API key: the
// programs do not print it, and the tests print only their output.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed once Wait returned
}

// start runs bin with args and exactly env (nothing inherited, as in a
// container); it is killed on cleanup if still running.
func start(t *testing.T, name, bin string, args []string, env map[string]string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = []string{}
	for _, k := range sortedKeys(env) {
		p.cmd.Env = append(p.cmd.Env, k+"="+env[k])
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and fails unless the program exits 0 within grace, as
// a container runtime would kill it after its grace.
func (p *process) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within its %s grace after SIGTERM; output:\n%s", p.name, grace, p.out)
		return
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0; output:\n%s", p.name, code, p.out)
	}
}

// waitOutput waits until the program prints a match of re and returns its
// first group.
func (p *process) waitOutput(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			return m[1]
		}
		if p.exited() {
			t.Fatalf("%s exited %d; output:\n%s", p.name, p.cmd.ProcessState.ExitCode(), p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never printed %s; output:\n%s", p.name, re, p.out)
	return ""
}

// get returns the status and body of GET url, 0 when it cannot connect. It
// keeps no connection open, so none outlives the test.
func get(url string) (int, string) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// waitReady waits until the worker's /readyz answers 200.
func (p *process) waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	var last string
	for time.Now().Before(deadline) {
		status, body := get("http://" + addr + "/readyz")
		if status == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s", status, body)
		if p.exited() {
			t.Fatalf("%s exited %d before it was ready; output:\n%s", p.name, p.cmd.ProcessState.ExitCode(), p.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready (last /readyz: %s); output:\n%s", p.name, last, p.out)
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// provision publishes a sample request under id and returns the kind and
// error code of its terminal event.
func provision(t *testing.T, ns *server.Server, prefix, id string) (kind, code string) {
	t.Helper()
	nc, js := jstest.Connect(t, ns)
	subjects := jobs.Subjects{Prefix: prefix}
	sub, err := nc.SubscribeSync(subjects.EventsFor(id))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	data, err := os.ReadFile(filepath.Join(root, "testdata", "requests", "minimal.json"))
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(data, &req); err != nil {
		t.Fatal(err)
	}
	req["request_id"], req["name"] = id, id
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := js.Publish(ctx, subjects.Create(), body, jetstream.WithMsgID(id)); err != nil {
		t.Fatalf("publish request: %v", err)
	}
	deadline := time.Now().Add(waitFor)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no terminal event for %s: %v", id, err)
		}
		var ev struct {
			Kind  string
			Error *struct{ Code string }
		}
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Fatalf("event %s: %v", msg.Data, err)
		}
		if ev.Kind == string(jobs.KindCompleted) || ev.Kind == string(jobs.KindFailed) || ev.Kind == string(jobs.KindRejected) {
			if ev.Error != nil {
				code = ev.Error.Code
			}
			return ev.Kind, code
		}
	}
}

var metricLine = regexp.MustCompile(`(?m)^# TYPE (provisioner_\S+) `)

// exportedMetrics returns the provisioner_ metric families a worker's
// /metrics lists.
func exportedMetrics(t *testing.T, addr string) map[string]bool {
	t.Helper()
	status, body := get("http://" + addr + "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	out := map[string]bool{}
	for _, m := range metricLine.FindAllStringSubmatch(body, -1) {
		out[m[1]] = true
	}
	return out
}

// Runs the binaries as the compose file runs them: cnsim with its
// entrypoint's flags, three workers with its environment, the service names
// standing for a real NATS server and the simulator. One request goes
// through; every worker then stops cleanly within stop_grace_period.
func TestComposeStackRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the programs")
	}
	bins := buildPrograms(t)
	compose := loadCompose(t)
	w, sim := compose.Services["provisioner"], compose.Services["cnsim"]
	ns := jstest.Run(t, "")

	args := slices.Clone(sim.Entrypoint[1:])
	for i, a := range args {
		if (a == "-addr" || a == "--addr") && i+1 < len(args) {
			args[i+1] = "127.0.0.1:0" // not 0.0.0.0:8080: a free loopback port
		}
	}
	simProc := start(t, "cnsim", bins.cnsim, args, sim.Environment)
	apiURL := simProc.waitOutput(t, regexp.MustCompile(`cnsim listening on (http://\S+)`))

	var workers []*process
	var addrs []string
	for i := range w.Deploy.Replicas {
		env := maps.Clone(w.Environment)
		env["NATS_URL"] = ns.ClientURL()           // nats://nats:4222
		env["CLOUDNEXUS_API_URL"] = apiURL         // http://cnsim:8080/v1
		env["PROVISIONER_HTTP_ADDR"] = freeAddr(t) // :8081 in each container
		// One after the other: replicas setting up the same streams and
		// consumer at the same instant make the in-process nats-server
		// (built with -race here) report a data race of its own, between a
		// stream's config update and a consumer's creation.
		p := start(t, fmt.Sprintf("provisioner-%d", i+1), bins.provisioner, nil, env)
		p.waitReady(t, env["PROVISIONER_HTTP_ADDR"])
		workers = append(workers, p)
		addrs = append(addrs, env["PROVISIONER_HTTP_ADDR"])
	}

	if kind, code := provision(t, ns, "provision", "deploy-compose-1"); kind != string(jobs.KindCompleted) {
		t.Fatalf("request ended %s %s, want completed", kind, code)
	}

	known := codeMetrics(t)
	for _, addr := range addrs {
		for name := range exportedMetrics(t, addr) {
			if !known[name] {
				t.Errorf("/metrics exports %s, which the tests' reading of the code missed", name)
			}
		}
	}

	grace := duration(t, "stop_grace_period", w.StopGracePeriod)
	var wg sync.WaitGroup
	for _, p := range workers {
		wg.Go(func() { p.stop(t, grace) })
	}
	wg.Wait()
	simProc.stop(t, 10*time.Second)
}

// natsObjects are the normalized configurations of the streams, consumer
// and bucket as a server keeps them.
type natsObjects struct {
	Requests, Events jetstream.StreamConfig
	Consumer         jetstream.ConsumerConfig
	Bucket           jetstream.StreamConfig
}

// names of the objects, from the worker's configuration.
type natsNames struct {
	requests, events, consumer, bucket string
}

func namesOf(cfg map[string]string) natsNames {
	return natsNames{requests: cfg["PROVISIONER_REQUESTS_STREAM"], events: cfg["PROVISIONER_EVENTS_STREAM"],
		consumer: cfg["PROVISIONER_CONSUMER"], bucket: cfg["PROVISIONER_KV_BUCKET"]}
}

// readObjects reads the objects back from a server. The server fills in
// its defaults, so objects made by different means compare equal when they
// are equal; the metadata it adds (its version) is left out.
func readObjects(t *testing.T, js jetstream.JetStream, n natsNames) natsObjects {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream := func(name string) jetstream.StreamConfig {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		cfg.Metadata = nil
		return cfg
	}
	c, err := js.Consumer(ctx, n.requests, n.consumer)
	if err != nil {
		t.Fatalf("consumer %s: %v", n.consumer, err)
	}
	cc := c.CachedInfo().Config
	cc.Metadata = nil
	return natsObjects{Requests: stream(n.requests), Events: stream(n.events), Consumer: cc, Bucket: stream("KV_" + n.bucket)}
}

func assertSameObjects(t *testing.T, what string, got, want natsObjects) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("%s differ from what the worker creates\ngot:  %s\nwant: %s", what, g, w)
	}
}

// singleServer checks a definition's replica count against the ConfigMap's
// and returns the 1 a single test server can hold.
func singleServer(t *testing.T, what string, replicas int, want string) int {
	t.Helper()
	if strconv.Itoa(replicas) != want {
		t.Errorf("%s has %d replicas; PROVISIONER_STREAM_REPLICAS is %s", what, replicas, want)
	}
	return 1
}

// strictJSON decodes data into v, refusing unknown fields: a misspelt field
// of a nats CLI file would otherwise be ignored by the CLI too.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// shellWords splits a line of setup.sh into words, honouring double quotes.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// createFromCLI runs what deploy/nats/setup.sh asks of the nats CLI against
// js: stream and consumer add with their JSON files, kv add with its flags.
func createFromCLI(t *testing.T, js jetstream.JetStream, replicas string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	script, err := os.ReadFile(filepath.Join("nats", "setup.sh"))
	if err != nil {
		t.Fatal(err)
	}
	readConfig := func(words []string, v any) string {
		var file string
		for i, w := range words {
			if w == "--config" && i+1 < len(words) {
				file = filepath.Join("nats", filepath.Base(strings.ReplaceAll(words[i+1], "$dir/", "")))
			}
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("setup.sh: %v", err)
		}
		if err := strictJSON(data, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return file
	}
	used := map[string]bool{}
	for _, line := range strings.Split(string(script), "\n") {
		words := shellWords(line)
		if len(words) < 3 || words[0] != "nats" {
			continue
		}
		switch cmd := words[1] + " " + words[2]; cmd {
		case "stream add":
			var cfg jetstream.StreamConfig
			file := readConfig(words, &cfg)
			used[file] = true
			cfg.Replicas = singleServer(t, file, cfg.Replicas, replicas)
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		case "consumer add":
			var cfg jetstream.ConsumerConfig
			file := readConfig(words, &cfg)
			used[file] = true
			if _, err := js.CreateConsumer(ctx, words[3], cfg); err != nil {
				t.Fatalf("%s on stream %s: %v", file, words[3], err)
			}
		case "kv add":
			cfg := jetstream.KeyValueConfig{Bucket: words[3], Storage: jetstream.FileStorage, History: 1, Replicas: 1}
			for _, w := range words[4:] {
				name, value, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
				switch name {
				case "history":
					n, err := strconv.Atoi(value)
					if err != nil {
						t.Fatalf("kv add --history=%s: %v", value, err)
					}
					cfg.History = uint8(n)
				case "storage":
					if err := json.Unmarshal([]byte(strconv.Quote(value)), &cfg.Storage); err != nil {
						t.Fatalf("kv add --storage=%s: %v", value, err)
					}
				case "replicas":
					n, err := strconv.Atoi(value)
					if err != nil {
						t.Fatalf("kv add --replicas=%s: %v", value, err)
					}
					cfg.Replicas = singleServer(t, "kv add", n, replicas)
				case "description":
					cfg.Description = value
				default:
					t.Fatalf("setup.sh: kv add flag %s is not one this test maps", w)
				}
			}
			if _, err := js.CreateKeyValue(ctx, cfg); err != nil {
				t.Fatalf("kv add %s: %v", cfg.Bucket, err)
			}
		default:
			t.Fatalf("setup.sh: nats %s is not one this test maps", cmd)
		}
	}
	files, _ := filepath.Glob(filepath.Join("nats", "*.json"))
	for _, f := range files {
		if !used[f] {
			t.Errorf("%s is not used by setup.sh", f)
		}
	}
}

// The NACK resources' specs, as far as they are used; a field not listed
// here fails the test rather than being ignored.
type (
	nackStream struct {
		Name, Description       string
		Subjects                []string
		Retention, Storage      string
		Discard                 string
		Replicas                int
		DuplicateWindow, MaxAge string
		PreventDelete           bool
	}
	nackConsumer struct {
		StreamName, DurableName, Description, FilterSubject string
		DeliverPolicy, AckPolicy, ReplayPolicy, AckWait     string
		MaxDeliver, MaxAckPending                           int
		PreventDelete                                       bool
	}
	nackKeyValue struct {
		Bucket, Description, Storage string
		History, Replicas            int
		PreventDelete                bool
	}
)

// enum sets an enum of the jetstream package from its JSON name.
func enum(t *testing.T, name string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(strconv.Quote(name)), v); err != nil {
		t.Fatalf("%q: %v", name, err)
	}
}

// optDuration parses a NACK duration, empty meaning zero.
func optDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	return duration(t, "NACK duration", s)
}

// createFromNACK creates what the NACK resources of deploy/nats/nack
// describe, mapping their fields as NACK does.
func createFromNACK(t *testing.T, js jetstream.JetStream, replicas string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var streams, consumers []manifest
	var buckets []manifest
	for _, m := range loadManifests(t) {
		if !strings.HasPrefix(m.path, filepath.Join("nats", "nack")) {
			continue
		}
		if api, _ := m.obj["apiVersion"].(string); m.kind() != "Kustomization" && api != "jetstream.nats.io/v1beta2" {
			t.Errorf("%s: apiVersion %s, want jetstream.nats.io/v1beta2", m, api)
		}
		switch m.kind() {
		case "Stream":
			streams = append(streams, m)
		case "Consumer":
			consumers = append(consumers, m)
		case "KeyValue":
			buckets = append(buckets, m)
		}
	}
	if len(streams) != 2 || len(consumers) != 1 || len(buckets) != 1 {
		t.Fatalf("deploy/nats/nack has %d streams, %d consumers, %d buckets; want 2, 1, 1", len(streams), len(consumers), len(buckets))
	}
	for _, m := range streams {
		s := decode[nackStream](t, m.obj["spec"], true)
		cfg := jetstream.StreamConfig{Name: s.Name, Description: s.Description, Subjects: s.Subjects,
			Duplicates: optDuration(t, s.DuplicateWindow), MaxAge: optDuration(t, s.MaxAge)}
		enum(t, s.Retention, &cfg.Retention)
		enum(t, s.Storage, &cfg.Storage)
		enum(t, s.Discard, &cfg.Discard)
		cfg.Replicas = singleServer(t, m.String(), s.Replicas, replicas)
		if !s.PreventDelete {
			t.Errorf("%s: preventDelete is not true: deleting the resource would delete the stream", m)
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	for _, m := range consumers {
		c := decode[nackConsumer](t, m.obj["spec"], true)
		cfg := jetstream.ConsumerConfig{Durable: c.DurableName, Description: c.Description, FilterSubject: c.FilterSubject,
			AckWait: optDuration(t, c.AckWait), MaxDeliver: c.MaxDeliver, MaxAckPending: c.MaxAckPending}
		enum(t, c.DeliverPolicy, &cfg.DeliverPolicy)
		enum(t, c.AckPolicy, &cfg.AckPolicy)
		enum(t, c.ReplayPolicy, &cfg.ReplayPolicy)
		if _, err := js.CreateConsumer(ctx, c.StreamName, cfg); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	for _, m := range buckets {
		kv := decode[nackKeyValue](t, m.obj["spec"], true)
		cfg := jetstream.KeyValueConfig{Bucket: kv.Bucket, Description: kv.Description, History: uint8(kv.History)}
		enum(t, kv.Storage, &cfg.Storage)
		cfg.Replicas = singleServer(t, m.String(), kv.Replicas, replicas)
		if !kv.PreventDelete {
			t.Errorf("%s: preventDelete is not true: deleting the resource would delete the job records", m)
		}
		if _, err := js.CreateKeyValue(ctx, cfg); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
}

// Runs the worker with the production overlay's ConfigMap. First with
// PROVISIONER_MANAGE_STREAMS=true, to see the streams, consumer and bucket
// the code makes from these values; the nats CLI definitions and the NACK
// resources must make the same. Then as in production, against the objects
// the nats CLI definitions made: it finds them, becomes ready, provisions,
// and stops cleanly within terminationGracePeriodSeconds.
func TestProductionConfigRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the programs")
	}
	bins := buildPrograms(t)
	b := loadBase(t)
	prod := productionConfig(t, b)
	names := namesOf(prod)
	grace := time.Duration(*b.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second

	key := b.secret.StringData["api-key"]
	sim, err := cnsim.Start(cnsim.Config{APIKey: key, ProvisionDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	env := maps.Clone(prod)
	delete(env, "NATS_CREDS") // the mounted Secret; the test server needs none
	env["CLOUDNEXUS_API_URL"] = sim.URL()
	env["CLOUDNEXUS_API_KEY"] = key

	// What the code creates from these values.
	nsWorker := jstest.Run(t, "")
	managed := maps.Clone(env)
	managed["NATS_URL"] = nsWorker.ClientURL()
	managed["PROVISIONER_MANAGE_STREAMS"] = "true"
	managed["PROVISIONER_STREAM_REPLICAS"] = "1" // one test server
	managed["PROVISIONER_HTTP_ADDR"] = freeAddr(t)
	p := start(t, "provisioner (managing streams)", bins.provisioner, nil, managed)
	p.waitReady(t, managed["PROVISIONER_HTTP_ADDR"])
	p.stop(t, grace)
	_, js := jstest.Connect(t, nsWorker)
	want := readObjects(t, js, names)

	nsCLI := jstest.Run(t, "")
	_, jsCLI := jstest.Connect(t, nsCLI)
	createFromCLI(t, jsCLI, prod["PROVISIONER_STREAM_REPLICAS"])
	assertSameObjects(t, "deploy/nats (nats CLI) definitions", readObjects(t, jsCLI, names), want)

	nsNACK := jstest.Run(t, "")
	_, jsNACK := jstest.Connect(t, nsNACK)
	createFromNACK(t, jsNACK, prod["PROVISIONER_STREAM_REPLICAS"])
	assertSameObjects(t, "deploy/nats/nack resources", readObjects(t, jsNACK, names), want)

	// Production: the worker only looks the objects up.
	env["NATS_URL"] = nsCLI.ClientURL()
	env["PROVISIONER_HTTP_ADDR"] = freeAddr(t)
	p = start(t, "provisioner (production)", bins.provisioner, nil, env)
	p.waitReady(t, env["PROVISIONER_HTTP_ADDR"])
	if kind, code := provision(t, nsCLI, prod["PROVISIONER_SUBJECT_PREFIX"], "deploy-production-1"); kind != string(jobs.KindCompleted) {
		t.Fatalf("request ended %s %s, want completed", kind, code)
	}
	p.stop(t, grace)
}
