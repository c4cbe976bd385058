package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for the program and the test at once.
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

const testKey = "cn_live_SECRET_never_shown_0123456789"

func TestBadConfigurationExits2NamingTheVariable(t *testing.T) {
	tests := []struct {
		name, variable, value string
		dev                   bool
	}{
		{name: "missing key", variable: "CLOUDNEXUS_API_KEY", value: ""},
		{name: "not a number", variable: "PROVISIONER_CONCURRENCY", value: "lots"},
		{name: "zero concurrency", variable: "PROVISIONER_CONCURRENCY", value: "0"},
		{name: "bad duration", variable: "PROVISIONER_ACK_WAIT", value: "soon"},
		{name: "ack wait too short", variable: "PROVISIONER_ACK_WAIT", value: "10ms"},
		{name: "bad bool", variable: "PROVISIONER_MANAGE_STREAMS", value: "maybe"},
		{name: "replicas", variable: "PROVISIONER_STREAM_REPLICAS", value: "7"},
		{name: "prefix with wildcard", variable: "PROVISIONER_SUBJECT_PREFIX", value: "prov.*"},
		{name: "stream name", variable: "PROVISIONER_EVENTS_STREAM", value: "bad.name"},
		{name: "log level", variable: "PROVISIONER_LOG_LEVEL", value: "chatty"},
		{name: "log format", variable: "PROVISIONER_LOG_FORMAT", value: "xml"},
		{name: "http addr", variable: "PROVISIONER_HTTP_ADDR", value: "8081"},
		{name: "api url", variable: "CLOUDNEXUS_API_URL", value: "ftp://x"},
		{name: "h2c over https", variable: "CLOUDNEXUS_API_H2C", value: "true"}, // the default URL is https
		{name: "h2c not a bool", variable: "CLOUDNEXUS_API_H2C", value: "h2"},
		{name: "poll max below initial", variable: "PROVISIONER_POLL_MAX", value: "1ms"},
		{name: "dev flag not a bool", variable: "PROVISIONER_DEV", value: "yes please"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CLOUDNEXUS_API_KEY", testKey)
			t.Setenv(tt.variable, tt.value)
			var stdout, stderr syncBuffer
			code := run(context.Background(), nil, &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.variable) {
				t.Errorf("error does not name %s: %s", tt.variable, stderr.String())
			}
			if strings.Contains(stderr.String()+stdout.String(), testKey) {
				t.Errorf("output shows the API key")
			}
		})
	}
}

func TestBadFlagExits2(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"-no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if code := run(context.Background(), []string{"extra"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit code %d for an argument, want 2", code)
	}
}

// TestDevRun is `make run`: the samples are provisioned and printed, a
// request published while it runs is provisioned too, and a signal stops
// it with exit code 0.
func TestDevRun(t *testing.T) {
	t.Setenv("PROVISIONER_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("PROVISIONER_POLL_INITIAL", "100ms")
	t.Setenv("CLOUDNEXUS_API_KEY", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-dev", "-dev-nats-port=-1", "-data", t.TempDir(), "-samples", "../../testdata/requests"}, &stdout, &stderr)
	}()

	waitFor := func(what string, pred func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := stdout.String()
			if pred(out) {
				return out
			}
			select {
			case code := <-done:
				t.Fatalf("exited with %d while waiting for %s\nstdout:\n%s\nstderr:\n%s", code, what, out, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nstdout:\n%s\nstderr:\n%s", what, out, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	samples := []string{"req-7f3a9c", "req-web-01", "req-minimal"}
	out := waitFor("the samples' completion", func(out string) bool {
		for _, id := range samples {
			if !regexp.MustCompile(`(?m)^completed +` + id + ` +inst_\w+ .* running \d+\.\d+\.\d+\.\d+`).MatchString(out) {
				return false
			}
		}
		return true
	})
	url := regexp.MustCompile(`NATS at (nats://[0-9.:]+)`).FindStringSubmatch(out)
	if url == nil {
		t.Fatalf("no NATS address in the output:\n%s", out)
	}

	// A request published while it runs, as the README shows with the nats CLI.
	nc, err := nats.Connect(url[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	body, _ := json.Marshal(map[string]any{"request_id": "req-live", "name": "live-1", "plan": "standard-4", "region": "eu-west-1", "image": "ubuntu-22.04"})
	msg := nats.NewMsg("provision.requests.create")
	msg.Data = body
	msg.Header.Set("Nats-Msg-Id", "req-live")
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	waitFor("the live request's completion", func(out string) bool {
		return regexp.MustCompile(`(?m)^completed +req-live +inst_\w+ "live-1" running`).MatchString(out)
	})
	nc.Close()

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d, want 0\nstderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after the signal")
	}
}
