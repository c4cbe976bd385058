package worker

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestFieldsCore checks that loggers made with With through a fieldsCore
// write their fields, in order, with each entry and without sharing them
// between siblings, and that the wrapped core still decides what is written.
func TestFieldsCore(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	base := withFieldsCore(zap.New(core)).With(zap.String("worker", "w1"))
	job := base.With(zap.Uint64("stream_seq", 7))
	a := job.With(zap.String("request_id", "a"))
	b := job.With(zap.String("request_id", "b"))

	a.Info("one", zap.String("kind", "completed"))
	b.Info("two")
	a.Debug("not written: below the core's level")
	base.Warn("three")

	type line struct {
		msg  string
		keys []string
		id   string
	}
	var got []line
	for _, e := range logs.All() {
		l := line{msg: e.Message}
		for _, f := range e.Context {
			l.keys = append(l.keys, f.Key)
			if f.Key == "request_id" {
				l.id = f.String
			}
		}
		got = append(got, l)
	}
	want := []line{
		{"one", []string{"worker", "stream_seq", "request_id", "kind"}, "a"},
		{"two", []string{"worker", "stream_seq", "request_id"}, "b"},
		{"three", []string{"worker"}, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("wrote %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].msg != want[i].msg || !slices.Equal(got[i].keys, want[i].keys) || got[i].id != want[i].id {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestJobLogFields checks that a job's one logger writes the ids the job
// learns after it was made, in order, and that the lease keeper's goroutine
// can log for the job while its step records them (the race detector, which
// `make test` runs, fails this test if the ids are written unsynchronised or
// the logger is replaced).
func TestJobLogFields(t *testing.T) {
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"}), zapcore.Lock(zapcore.AddSync(&buf)), zapcore.InfoLevel)
	w := &Worker{log: withFieldsCore(zap.New(core)).With(zap.String("worker", "w1"))}
	j := &job{w: w}
	j.logFields.streamSeq, j.logFields.delivery = 7, 2
	j.log = w.log.With(zap.Inline(&j.logFields))

	j.log.Info("decoded")
	done := make(chan struct{})
	go func() { // as keepLeases does
		defer close(done)
		for range 50 {
			j.log.Warn("progress ack failed")
		}
	}()
	j.logFields.setRequestID("req-1")
	j.log.Info("claimed")
	j.logFields.setInstanceID("inst-1")
	j.log.Info("request finished", zap.String("kind", "completed"))
	<-done

	var got []string
	keeper := 0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Contains(line, `"progress ack failed"`) {
			keeper++
			continue
		}
		got = append(got, line)
	}
	want := []string{
		`{"msg":"decoded","worker":"w1","stream_seq":7,"delivery":2}`,
		`{"msg":"claimed","worker":"w1","stream_seq":7,"delivery":2,"request_id":"req-1"}`,
		`{"msg":"request finished","worker":"w1","stream_seq":7,"delivery":2,"request_id":"req-1","instance_id":"inst-1","kind":"completed"}`,
	}
	if !slices.Equal(got, want) || keeper != 50 {
		t.Errorf("lines (and %d of the keeper's 50):\n%s\nwant:\n%s", keeper, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// BenchmarkJobLogger measures what a job's logging costs on the happy path:
// the job's logger, its two ids, and its two info lines, to io.Discard with
// the production encoder (the job struct, which holds the ids, included).
func BenchmarkJobLogger(b *testing.B) {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	w := &Worker{log: withFieldsCore(zap.New(core)).With(zap.String("worker", "w1"))}
	b.ReportAllocs()
	for b.Loop() {
		j := &job{w: w}
		j.logFields.streamSeq, j.logFields.delivery = 7, 1
		j.log = w.log.With(zap.Inline(&j.logFields))
		j.logFields.setRequestID("req-000001")
		j.logFields.setInstanceID("inst_000001")
		j.log.Info("instance created", zap.String("status", "running"))
		j.log.Info("request finished", zap.String("kind", "completed"))
	}
}
