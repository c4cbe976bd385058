package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// Names the worker uses by default, and so the suite too.
const (
	requestsStream = "PROVISION_REQUESTS"
	eventsStream   = "PROVISION_EVENTS"
	consumerName   = "provisioner"
	jobsBucket     = "provision_jobs"
)

// options shape one case's environment.
type options struct {
	// nodes is 1 (the default) or 3 for a JetStream cluster.
	nodes int
	// sim configures the simulator; its APIKey defaults to secret.
	sim cnsim.Config
	// env is the workers' environment, "NAME=value", over the suite's defaults.
	env []string
}

// env is one case: its NATS server or cluster, simulator, worker processes,
// a connection of its own, and what it expects of every request it published.
type env struct {
	t     *testing.T
	s     *suite
	dir   string
	nodes []*natsNode
	urls  string
	sim   *cnsim.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	wenv  []string

	replicas []*replica
	wants    map[string]want // by request_id
	rejects  map[string]int  // expected rejected events by "<subject token> <code>"

	// seen holds every terminal event published for a request, as it went
	// over the wire, including copies JetStream dropped as duplicates.
	seenMu sync.Mutex
	seen   map[string][][]byte
}

// want is what a request must end with.
type want struct {
	req       jobs.Request
	kind      jobs.Kind // completed or failed
	code      string    // the error code of a failed event
	instances int       // instances the simulator must have made for it: 0 or 1
}

func newEnv(t *testing.T, s *suite, o options) *env {
	t.Helper()
	e := &env{t: t, s: s, dir: t.TempDir(), wants: make(map[string]want), rejects: make(map[string]int), seen: make(map[string][][]byte)}
	if o.nodes == 3 {
		e.startCluster()
	} else {
		n := &natsNode{name: "n1", opts: singleNodeOptions(freePort(t), filepath.Join(e.dir, "jetstream"))}
		n.start(t)
		e.nodes = []*natsNode{n}
		e.urls = n.url()
	}
	t.Cleanup(func() {
		for _, n := range e.nodes {
			n.stop()
		}
	})

	if o.sim.APIKey == "" {
		o.sim.APIKey = secret
	}
	sim, err := cnsim.Start(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	t.Cleanup(sim.Close)
	e.wenv = o.env

	e.nc, err = nats.Connect(e.urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("faults-"+t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := e.nc.Subscribe(jobs.Subjects{}.Events(), e.observe); err != nil {
		t.Fatal(err)
	}
	e.waitJetStream()
	t.Cleanup(e.logTailsOnFailure)
	return e
}

// observe keeps every terminal event published, for the check that a
// terminal event published again is identical.
func (e *env) observe(m *nats.Msg) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) < 4 || !jobs.Kind(tok[len(tok)-2]).Terminal() {
		return
	}
	id := tok[len(tok)-1]
	e.seenMu.Lock()
	e.seen[id] = append(e.seen[id], bytes.Clone(m.Data))
	e.seenMu.Unlock()
}

func (e *env) seenTerminal(id string) [][]byte {
	e.seenMu.Lock()
	defer e.seenMu.Unlock()
	return e.seen[id]
}

// waitJetStream waits until JetStream answers (in a cluster: has elected
// its meta leader).
func (e *env) waitJetStream() {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := e.js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("JetStream not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// natsNode is an in-process NATS server with JetStream that can be shut down
// and started again on the same port and store directory.
type natsNode struct {
	name string
	opts func() *server.Options
	srv  *server.Server
}

func singleNodeOptions(port int, storeDir string) func() *server.Options {
	return func() *server.Options {
		return &server.Options{ServerName: "n1", Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true}
	}
}

func (n *natsNode) start(t *testing.T) {
	t.Helper()
	srv, err := server.NewServer(n.opts())
	if err != nil {
		t.Fatalf("nats server %s: %v", n.name, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		t.Fatalf("nats server %s not ready", n.name)
	}
	n.srv = srv
}

func (n *natsNode) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

func (n *natsNode) url() string {
	o := n.opts()
	return fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
}

// startCluster starts three nodes routed to each other, each with its own
// store directory. Routes need known ports, so free ones are picked first.
func (e *env) startCluster() {
	t := e.t
	var clientPorts, routePorts [3]int
	var routes, urls []string
	for i := range 3 {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		store := filepath.Join(e.dir, name)
		client, route := clientPorts[i], routePorts[i]
		n := &natsNode{name: name, opts: func() *server.Options {
			return &server.Options{
				ServerName: name, Host: "127.0.0.1", Port: client, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true,
				Cluster: server.ClusterOpts{Name: "faults", Host: "127.0.0.1", Port: route},
				Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
			}
		}}
		e.nodes = append(e.nodes, n)
	}
	// Start them together: each waits for a quorum to form.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, n := range e.nodes {
		wg.Go(func() {
			srv, err := server.NewServer(n.opts())
			if err != nil {
				errs[i] = err
				return
			}
			go srv.Start()
			if !srv.ReadyForConnections(30 * time.Second) {
				srv.Shutdown()
				errs[i] = fmt.Errorf("nats server %s not ready", n.name)
				return
			}
			n.srv = srv
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range e.nodes {
			n.stop()
		}
		t.Fatal(err)
	}
	e.urls = strings.Join(urls, ",")
}

// node returns the node of that server name.
func (e *env) node(name string) *natsNode {
	for _, n := range e.nodes {
		if n.name == name {
			return n
		}
	}
	e.t.Fatalf("no node %q", name)
	return nil
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// replica is one worker replica: a provisioner process, and the ones that
// replace it after it was killed. Only the test goroutine uses it.
type replica struct {
	e    *env
	name string
	env  []string
	runs int
	p    *proc
	logs []string
}

// proc is one provisioner process. Its waiter goroutine ends when the
// process does, closing done.
type proc struct {
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
	err     error // from Wait, once done is closed
	id      string
	started time.Time
}

// startReplica starts a worker process with the case's environment plus
// extra ("NAME=value"), and waits until it consumes.
func (e *env) startReplica(name string, extra ...string) *replica {
	e.t.Helper()
	r := &replica{e: e, name: name, env: extra}
	e.replicas = append(e.replicas, r)
	e.t.Cleanup(r.stopQuietly)
	r.start()
	return r
}

// start starts the next process of the replica and waits until it consumes.
func (r *replica) start() {
	t := r.e.t
	t.Helper()
	r.runs++
	path := filepath.Join(r.e.dir, fmt.Sprintf("%s-%d.log", r.name, r.runs))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(r.e.s.bin)
	cmd.Env = append(r.e.workerEnv(), r.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.name, err)
	}
	host, _ := os.Hostname()
	p := &proc{cmd: cmd, log: path, done: make(chan struct{}), id: host + "-" + strconv.Itoa(cmd.Process.Pid), started: time.Now()}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.p = p
	r.logs = append(r.logs, path)
	if err := p.waitLog(`"msg":"worker started"`, 60*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", r.name, err, tail(path, 30))
	}
}

// workerEnv is the environment of every worker of the case: short waits so
// that a case takes seconds, debug logs, the simulator and the key.
func (e *env) workerEnv() []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.dir,
		"NATS_URL=" + e.urls,
		"CLOUDNEXUS_API_URL=" + e.sim.URL(),
		"CLOUDNEXUS_API_KEY=" + secret,
		"PROVISIONER_ACK_WAIT=2s",
		"PROVISIONER_POLL_INITIAL=50ms",
		"PROVISIONER_POLL_MAX=200ms",
		"PROVISIONER_RETRY_INITIAL=20ms",
		"PROVISIONER_RETRY_MAX_INTERVAL=200ms",
		"PROVISIONER_HTTP_TIMEOUT=5s",
		"PROVISIONER_HTTP_ADDR=127.0.0.1:0",
		"PROVISIONER_SHUTDOWN_TIMEOUT=5s",
		"PROVISIONER_PROVISION_TIMEOUT=3m",
		"PROVISIONER_LOG_LEVEL=debug",
	}, e.wenv...)
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitLog waits until the process's log holds substr; it fails when the
// process exits first or timeout passes.
func (p *proc) waitLog(substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if b, _ := os.ReadFile(p.log); bytes.Contains(b, []byte(substr)) {
			return nil
		}
		select {
		case <-p.done:
			if b, _ := os.ReadFile(p.log); bytes.Contains(b, []byte(substr)) {
				return nil
			}
			return fmt.Errorf("exited (%v) before logging %s", p.err, substr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s in the log after %s", substr, timeout)
		}
	}
}

// probeAddr returns the address of the process's /healthz and /readyz, from
// the log line announcing it: the first with an "addr" and a message about
// the probes ("probes listening", "serving /healthz, /readyz and ...").
func (p *proc) probeAddr() (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var addr string
		err := eachLogLine(p.log, func(line map[string]any) {
			msg, _ := line["msg"].(string)
			if a, ok := line["addr"].(string); ok && addr == "" && (strings.Contains(msg, "probes") || strings.Contains(msg, "/readyz")) {
				addr = a
			}
		})
		if err != nil || addr != "" {
			return addr, err
		}
		if !p.running() || time.Now().After(deadline) {
			return "", errors.New("no log line announcing the probes' address")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL and waits for it.
func (r *replica) kill() {
	r.e.t.Helper()
	if err := r.p.cmd.Process.Kill(); err != nil && r.p.running() {
		r.e.t.Fatalf("kill %s: %v", r.name, err)
	}
	<-r.p.done
}

// term sends SIGTERM and waits up to timeout for the exit; it returns the
// exit code (-1 when it had to be killed) and how long the exit took.
func (r *replica) term(timeout time.Duration) (code int, took time.Duration) {
	start := time.Now()
	_ = r.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.p.done:
	case <-time.After(timeout):
		_ = r.p.cmd.Process.Kill()
		<-r.p.done
		return -1, time.Since(start)
	}
	return r.p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// stopQuietly ends a process still running when the test ends.
func (r *replica) stopQuietly() {
	if r.p != nil && r.p.running() {
		r.term(20 * time.Second)
	}
}

// stopWorkers stops every running worker with SIGTERM and reports any that
// does not exit 0.
func (e *env) stopWorkers() []string {
	var problems []string
	for _, r := range e.replicas {
		if r.p == nil || !r.p.running() {
			continue
		}
		if code, took := r.term(30 * time.Second); code != 0 {
			problems = append(problems, fmt.Sprintf("%s exited %d after SIGTERM (%s)", r.name, code, took.Round(time.Millisecond)))
		}
	}
	return problems
}

// logTailsOnFailure shows the end of every worker log when the case
// failed, and with FAULTS_LOGS=<dir> keeps every log there.
func (e *env) logTailsOnFailure() {
	if dir := os.Getenv("FAULTS_LOGS"); dir != "" {
		e.keepLogs(filepath.Join(dir, strings.ReplaceAll(e.t.Name(), "/", "_")))
	}
	if !e.t.Failed() {
		return
	}
	for _, r := range e.replicas {
		for _, l := range r.logs {
			e.t.Logf("--- %s ---\n%s", filepath.Base(l), tail(l, 40))
		}
	}
}

// keepLogs copies every worker log of the case into dir.
func (e *env) keepLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Logf("FAULTS_LOGS: %v", err)
		return
	}
	for _, r := range e.replicas {
		for _, l := range r.logs {
			b, err := os.ReadFile(l)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
			}
			if err != nil {
				e.t.Logf("FAULTS_LOGS: %v", err)
			}
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eachLogLine calls fn with every JSON line of a worker log (others are
// skipped: a panic or a race report).
func eachLogLine(path string, fn func(map[string]any)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			fn(line)
		}
	}
	return sc.Err()
}

// countLog counts the log lines of r's processes whose msg is msg.
func (r *replica) countLog(msg string) int {
	n := 0
	for _, l := range r.logs {
		_ = eachLogLine(l, func(line map[string]any) {
			if line["msg"] == msg {
				n++
			}
		})
	}
	return n
}

// requestIDsLogged returns the request_ids of r's log lines whose msg is msg.
func (r *replica) requestIDsLogged(msg string) map[string]bool {
	ids := make(map[string]bool)
	for _, l := range r.logs {
		_ = eachLogLine(l, func(line map[string]any) {
			if id, _ := line["request_id"].(string); line["msg"] == msg && id != "" {
				ids[id] = true
			}
		})
	}
	return ids
}

// countLogAll counts log lines with msg over every replica of the case.
func (e *env) countLogAll(msg string) int {
	n := 0
	for _, r := range e.replicas {
		n += r.countLog(msg)
	}
	return n
}

// request returns a valid request the simulator accepts, named after id.
func request(id string) jobs.Request {
	return jobs.Request{RequestID: id, Name: "vm-" + id, Plan: "standard-4", Region: "eu-west-1", Image: "ubuntu-22.04",
		SSHKeys: []string{"ssh_key_faults"}, Metadata: map[string]string{"suite": "faults"}}
}

// publish publishes a raw request message with Nats-Msg-Id msgID (none when
// empty), retrying while a cluster elects leaders.
func (e *env) publish(data []byte, msgID string) *jetstream.PubAck {
	e.t.Helper()
	var last error
	for try := 0; try < 20; try++ {
		msg := nats.NewMsg(jobs.Subjects{}.Create())
		msg.Data = data
		if msgID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ack, err := e.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(requestsStream))
		cancel()
		if err == nil {
			return ack
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	e.t.Fatalf("publish request: %v", last)
	return nil
}

// submit publishes requests with their request_id as Nats-Msg-Id, each
// expected to complete with one instance.
func (e *env) submit(reqs ...jobs.Request) {
	e.t.Helper()
	for _, r := range reqs {
		b, err := json.Marshal(r)
		if err != nil {
			e.t.Fatal(err)
		}
		e.expect(want{req: r, kind: jobs.KindCompleted, instances: 1})
		e.publish(b, r.RequestID)
	}
}

// expect records what a published request must end with.
func (e *env) expect(w want) { e.wants[w.req.RequestID] = w }

// expectRejected records n more rejected events on
// provision.events.rejected.<token> with code.
func (e *env) expectRejected(token, code string, n int) { e.rejects[token+" "+code] += n }

// requests makes n requests with ids prefix-001 and up.
func requests(prefix string, from, n int) []jobs.Request {
	out := make([]jobs.Request, n)
	for i := range out {
		out[i] = request(fmt.Sprintf("%s-%03d", prefix, from+i))
	}
	return out
}

// spreadProvisionTime gives each instance a provisioning time between lo and
// hi, fixed by its name and the seed.
func spreadProvisionTime(seed uint64, lo, hi time.Duration) func(apiclient.CreateInstanceRequest) time.Duration {
	return func(req apiclient.CreateInstanceRequest) time.Duration {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%s", seed, req.Name)
		return lo + time.Duration(h.Sum64()%uint64(hi-lo+1))
	}
}

// subjectCounts returns the number of messages per subject of a stream.
func (e *env) subjectCounts(stream, filter string) (map[string]uint64, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, 0, err
	}
	return info.State.Subjects, info.State.Msgs, nil
}

// outstanding returns how many expected terminal and rejected events are
// not in the events stream yet, or an error when it cannot tell.
func (e *env) outstanding() (int, error) {
	counts, _, err := e.subjectCounts(eventsStream, jobs.Subjects{}.Events())
	if err != nil {
		return 0, err
	}
	missing := 0
	for id := range e.wants {
		if counts[jobs.Subjects{}.Event(jobs.KindCompleted, id)]+counts[jobs.Subjects{}.Event(jobs.KindFailed, id)] == 0 {
			missing++
		}
	}
	got := make(map[string]uint64)
	for key := range e.rejects {
		got[strings.Fields(key)[0]] = counts[jobs.Subjects{}.Event(jobs.KindRejected, strings.Fields(key)[0])]
	}
	want := make(map[string]int)
	for key, n := range e.rejects {
		want[strings.Fields(key)[0]] += n
	}
	for tok, n := range want {
		if int(got[tok]) < n {
			missing += n - int(got[tok])
		}
	}
	return missing, nil
}

// waitFinished waits until every expected event is in the events stream;
// it returns how many are still missing when timeout passes.
func (e *env) waitFinished(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n, err := e.outstanding()
		if err == nil && n == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			if err != nil {
				e.t.Logf("events stream: %v", err)
				return len(e.wants)
			}
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitCounted waits until the events stream holds at least n events on
// subjects matching filter.
func (e *env) waitCounted(filter string, n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, msgs, err := e.subjectCounts(eventsStream, filter)
		if err == nil && int(msgs) >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waiting for %d events on %s: have %d (%v)", n, filter, msgs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requestsLeft returns the number of messages in the requests stream.
func (e *env) requestsLeft() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, requestsStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// waitDrained waits until the requests stream is empty; it returns how many
// messages are left when timeout passes.
func (e *env) waitDrained(timeout time.Duration) uint64 {
	deadline := time.Now().Add(timeout)
	for {
		n, err := e.requestsLeft()
		if err == nil && n == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			if err != nil {
				e.t.Logf("requests stream: %v", err)
				return 1
			}
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// records returns the job records of the expected requests that exist.
func (e *env) records() map[string]worker.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, jobsBucket)
	if err != nil {
		e.t.Fatalf("bucket %s: %v", jobsBucket, err)
	}
	out := make(map[string]worker.Record)
	for id := range e.wants {
		entry, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatalf("job record %s: %v", id, err)
		}
		var rec worker.Record
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			e.t.Fatalf("job record %s: %v", id, err)
		}
		out[id] = rec
	}
	return out
}

// revision returns the revision of a job record and its lease owner; zero
// and "" when there is none yet.
func (e *env) revision(id string) (uint64, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, jobsBucket)
	if err != nil {
		return 0, ""
	}
	entry, err := kv.Get(ctx, id)
	if err != nil {
		return 0, ""
	}
	var rec worker.Record
	if json.Unmarshal(entry.Value(), &rec) != nil {
		return 0, ""
	}
	return entry.Revision(), rec.Owner
}

// cutOff returns the jobs a killed process had in flight and their phase:
// the records it still held a lease on. owner is the process's worker id.
func (e *env) cutOff(owner string) map[string]string {
	jobs := make(map[string]string)
	for id, rec := range e.records() {
		if rec.Owner != "" && strings.HasPrefix(rec.Owner, owner+"/") {
			jobs[id] = rec.Phase()
		}
	}
	return jobs
}

// addPhases counts the phases of cut-off jobs into p.
func addPhases(p map[string]int, cut map[string]string) {
	for _, phase := range cut {
		p[phase]++
	}
}

// phaseNote renders phase counts for the report.
func phaseNote(p map[string]int) string {
	var parts []string
	for _, k := range []string{"claimed", "creating", "polling", "done"} {
		if p[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p[k], k))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// readyz returns the status code of a worker's /readyz.
func readyz(addr string) int {
	// No keep-alive: an idle connection left behind would be a goroutine leak.
	client := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
