package worker

import (
	"slices"
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
