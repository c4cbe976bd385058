package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/jobs"
)

// storedEvent is one message of the events stream.
type storedEvent struct {
	seq     uint64
	subject string
	header  nats.Header
	data    []byte
	ev      jobs.Event
}

// caseReport describes a case for its report row.
type caseReport struct {
	name     string
	injected string
	// check, when set, runs the case's own checks once the workers have
	// stopped, over the events stream; it returns notes for the report and
	// problems that fail the case.
	check func(events []storedEvent) (notes, problems []string)
}

// verify is the invariant every case ends with. It waits until every
// expected event is in the events stream and the requests stream is
// drained, stops the workers (each must exit 0), then checks over every
// request the case published: one instance, one terminal event of the
// expected outcome, further publishes of it identical, its job record
// finished and released, rejected events as expected, and the API key in no
// log line and no event. Then it runs the case's own check and records the
// case's report row.
func (e *env) verify(cr caseReport) {
	t := e.t
	t.Helper()
	var problems, notes []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if n := e.waitFinished(2 * time.Minute); n > 0 {
		fail("%d expected events still missing after 2m", n)
	}
	if n := e.waitDrained(time.Minute); n > 0 {
		fail("the requests stream still holds %d messages", n)
	}
	problems = append(problems, e.stopWorkers()...)

	events, err := e.readEvents()
	if err != nil {
		t.Fatalf("read the events stream: %v", err)
	}
	recs := e.records()

	leaks := 0
	terminal := make(map[string][]storedEvent)
	rejected := make(map[string]int)
	for _, se := range events {
		if bytes.Contains(se.data, []byte(secretMark)) || strings.Contains(fmt.Sprint(se.header), secretMark) {
			leaks++
			fail("event %d (%s) contains the API key", se.seq, se.subject)
		}
		token := se.ev.RequestID
		if token == "" {
			token = jobs.UnknownRequestID
		}
		if want := (jobs.Subjects{}).Event(se.ev.Kind, token); se.subject != want {
			fail("event %d is on %s, want %s", se.seq, se.subject, want)
		}
		switch {
		case se.ev.Kind.Terminal():
			terminal[se.ev.RequestID] = append(terminal[se.ev.RequestID], se)
		case se.ev.Kind == jobs.KindRejected:
			code := ""
			if se.ev.Error != nil {
				code = se.ev.Error.Code
			}
			rejected[token+" "+code]++
			continue
		}
		if _, ok := e.wants[se.ev.RequestID]; !ok {
			fail("event %d (%s) is about a request the case did not publish", se.seq, se.subject)
		}
	}

	lost, dupInst, dupTerm := 0, 0, 0
	ids := make([]string, 0, len(e.wants))
	for id := range e.wants {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	namedCreates := 0
	for _, id := range ids {
		w := e.wants[id]
		if w.req.Name != "" {
			n := e.sim.CreatesByName(w.req.Name)
			namedCreates += n
			if n > 1 {
				dupInst += n - 1
			}
			if n != w.instances {
				fail("%s: %d instances named %s, want %d", id, n, w.req.Name, w.instances)
			}
		}
		evs := terminal[id]
		switch {
		case len(evs) == 0:
			lost++
			fail("%s: no terminal event", id)
			continue
		case len(evs) > 1:
			dupTerm += len(evs) - 1
			fail("%s: %d terminal events", id, len(evs))
		}
		first := evs[0]
		code := ""
		if first.ev.Error != nil {
			code = first.ev.Error.Code
		}
		if first.ev.Kind != w.kind || (w.code != "" && code != w.code) {
			fail("%s: %s %s, want %s %s", id, first.ev.Kind, code, w.kind, w.code)
		}
		if first.ev.Kind == jobs.KindCompleted {
			if first.ev.Instance == nil || first.ev.Instance.Name != w.req.Name {
				fail("%s: completed event without its instance", id)
			} else if inst, ok := e.sim.Instance(first.ev.Instance.ID); !ok || inst.Name != w.req.Name {
				fail("%s: completed with instance %s, which the simulator does not have under that name", id, first.ev.Instance.ID)
			}
		}
		for _, b := range e.seenTerminal(id) {
			if !bytes.Equal(b, first.data) {
				fail("%s: terminal event published again with other content:\n%s\nstored:\n%s", id, b, first.data)
			}
		}
		switch rec, ok := recs[id]; {
		case !ok:
			fail("%s: no job record", id)
		case !bytes.Equal(rec.Terminal, first.data):
			fail("%s: the job record's terminal event differs from the published one", id)
		case rec.Owner != "":
			fail("%s: finished job still leased by %s", id, rec.Owner)
		}
	}
	if extra := e.sim.Creates() - namedCreates; extra > 0 {
		dupInst += extra
		fail("%d instances with names no request had", extra)
	}
	for key, n := range e.rejects {
		if rejected[key] != n {
			fail("rejected events %q: %d, want %d", key, rejected[key], n)
		}
	}
	for key, n := range rejected {
		if _, ok := e.rejects[key]; !ok {
			fail("unexpected rejected events %q: %d", key, n)
		}
	}

	lines := 0
	for _, r := range e.replicas {
		for _, path := range r.logs {
			n, l, err := scanLog(path)
			if err != nil {
				fail("read %s: %v", path, err)
			}
			lines += n
			leaks += l.leaks
			if l.leaks > 0 {
				fail("%s: %d log lines contain the API key", r.name, l.leaks)
			}
			if l.races > 0 {
				fail("%s: the race detector reported %d data races", r.name, l.races)
			}
			if l.panics > 0 {
				fail("%s: %d panics", r.name, l.panics)
			}
		}
	}
	e.s.addScan(lines, len(events), leaks)
	if cr.check != nil {
		n, p := cr.check(events)
		notes, problems = append(notes, n...), append(problems, p...)
	}

	result := "pass"
	if len(notes) > 0 {
		result += ": " + strings.Join(notes, "; ")
	}
	if len(problems) > 0 {
		result = fmt.Sprintf("FAIL (%d problems): %s", len(problems), problems[0])
	}
	e.s.record(row{name: cr.name, injected: cr.injected, order: e.s.orders[t.Name()[strings.LastIndex(t.Name(), "/")+1:]], requests: len(e.wants), lost: lost, dupInst: dupInst, dupTerm: dupTerm, result: result})
	t.Logf("%s | %s | requests %d | lost %d | duplicate instances %d | duplicate terminal events %d | %s", cr.name, cr.injected, len(e.wants), lost, dupInst, dupTerm, result)
	for _, p := range problems {
		t.Error(p)
	}
}

// readEvents reads every message of the events stream, one by one.
func (e *env) readEvents() ([]storedEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, eventsStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []storedEvent
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		se := storedEvent{seq: seq, subject: m.Subject, header: m.Header, data: m.Data}
		if err := json.Unmarshal(m.Data, &se.ev); err != nil {
			return nil, fmt.Errorf("message %d is not an event: %w", seq, err)
		}
		out = append(out, se)
	}
	return out, nil
}

// logFindings is what scanning one worker log found.
type logFindings struct {
	leaks, races, panics int
}

// scanLog reads a worker log line by line: the key, race reports, panics.
func scanLog(path string) (int, logFindings, error) {
	var l logFindings
	f, err := os.Open(path)
	if err != nil {
		return 0, l, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		n++
		switch {
		case bytes.Contains(line, []byte(secretMark)):
			l.leaks++
		case bytes.Contains(line, []byte("WARNING: DATA RACE")):
			l.races++
		case bytes.HasPrefix(line, []byte("panic:")), bytes.Contains(line, []byte(`"msg":"job panicked`)):
			l.panics++
		}
	}
	return n, l, sc.Err()
}
