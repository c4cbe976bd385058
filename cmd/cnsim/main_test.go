package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func noEnv(string) string { return "" }

// syncBuffer is a bytes buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     string
		check   func(t *testing.T, cfg cnsim.Config, addr string)
		wantErr string // in stderr; empty for valid
	}{
		{
			name: "defaults",
			check: func(t *testing.T, cfg cnsim.Config, addr string) {
				if addr != "127.0.0.1:8080" || cfg.APIKey != "" || cfg.ProvisionDelay != 2*time.Second || cfg.Instant {
					t.Errorf("addr %q, cfg %+v", addr, cfg)
				}
			},
		},
		{
			name: "key from env",
			env:  "cn_env_key",
			check: func(t *testing.T, cfg cnsim.Config, _ string) {
				if cfg.APIKey != "cn_env_key" {
					t.Errorf("APIKey %q", cfg.APIKey)
				}
			},
		},
		{
			name: "flag over env",
			args: []string{"-api-key", "cn_flag_key"},
			env:  "cn_env_key",
			check: func(t *testing.T, cfg cnsim.Config, _ string) {
				if cfg.APIKey != "cn_flag_key" {
					t.Errorf("APIKey %q", cfg.APIKey)
				}
			},
		},
		{
			name: "every fault",
			args: []string{
				"-addr", ":0", "-provision-delay", "0", "-ignore-idempotency-key",
				"-error-rate", "create=0.1,get=0.05", "-error-status", "500", "-retry-after", "2s",
				"-latency", "create=100ms,get=50ms", "-create-then-500", "0.1", "-create-then-drop", "0.2",
				"-stuck-pending", "0.3", "-end-in-error", "0.4", "-seed", "42",
			},
			check: func(t *testing.T, cfg cnsim.Config, addr string) {
				f := cfg.Faults
				if addr != ":0" || !cfg.Instant || !cfg.IgnoreIdempotencyKey || cfg.Seed != 42 ||
					f.ErrorRate[cnsim.EndpointCreate] != 0.1 || f.ErrorRate[cnsim.EndpointGet] != 0.05 ||
					f.ErrorStatus != 500 || f.RetryAfter != 2*time.Second ||
					f.Latency[cnsim.EndpointCreate] != 100*time.Millisecond || f.Latency[cnsim.EndpointGet] != 50*time.Millisecond ||
					f.CreateThen500 != 0.1 || f.CreateThenDrop != 0.2 || f.StuckPending != 0.3 || f.EndInError != 0.4 {
					t.Errorf("addr %q, cfg %+v", addr, cfg)
				}
			},
		},
		{name: "bad error rate", args: []string{"-error-rate", "create=2"}, wantErr: "-error-rate"},
		{name: "unknown endpoint", args: []string{"-error-rate", "update=0.1"}, wantErr: "-error-rate"},
		{name: "bad latency", args: []string{"-latency", "get=fast"}, wantErr: "-latency"},
		{name: "bad error status", args: []string{"-error-status", "404"}, wantErr: "-error-status"},
		{name: "bad retry after", args: []string{"-retry-after", "soon"}, wantErr: "-retry-after"},
		{name: "negative retry after", args: []string{"-retry-after", "-1s"}, wantErr: "-retry-after"},
		{name: "negative delay", args: []string{"-provision-delay", "-1s"}, wantErr: "-provision-delay"},
		{name: "bad rate", args: []string{"-stuck-pending", "1.5"}, wantErr: "-stuck-pending"},
		{name: "nan rate", args: []string{"-create-then-500", "NaN"}, wantErr: "-create-then-500"},
		{name: "create rates over 1", args: []string{"-create-then-500", "0.6", "-create-then-drop", "0.6"}, wantErr: "-create-then-drop"},
		{name: "fate rates over 1", args: []string{"-stuck-pending", "0.6", "-end-in-error", "0.6"}, wantErr: "-end-in-error"},
		{name: "bad addr", args: []string{"-addr", "localhost"}, wantErr: "-addr"},
		{name: "bad seed", args: []string{"-seed", "-1"}, wantErr: "-seed"},
		{name: "unknown flag", args: []string{"-port", "80"}, wantErr: "-port"},
		{name: "argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			cfg, addr, err := parseFlags(tt.args, func(string) string { return tt.env }, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags: %v\n%s", err, stderr.String())
				}
				tt.check(t, cfg, addr)
				return
			}
			if err == nil || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("err %v, stderr %q; want a message naming %s", err, stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestRunBadFlagExits2(t *testing.T) {
	t.Parallel()
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"-error-rate", "x"}, noEnv, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "-error-rate") {
		t.Errorf("stderr %q does not name the flag", stderr.String())
	}
	if code := run(context.Background(), []string{"-h"}, noEnv, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-addr", "127.0.0.1:0", "-provision-delay", "0", "-latency", "list=1h"},
			func(string) string { return "cn_env_key" }, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL: %v (stderr %q)", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	fields := strings.Fields(line)
	if len(fields) < 4 || !strings.HasPrefix(fields[3], "http://127.0.0.1:") || !strings.HasSuffix(fields[3], "/v1") {
		t.Fatalf("printed %q, want the base URL", line)
	}
	base := fields[3]

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	req, _ := http.NewRequest("POST", base+"/instances",
		strings.NewReader(`{"name":"web","plan":"standard-1","region":"us-east-1","image":"debian-12"}`))
	req.Header.Set("Authorization", "Bearer cn_env_key")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var in apiclient.Instance
	err = json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 || in.Status != "running" {
		t.Fatalf("create: %d %+v %v", resp.StatusCode, in, err)
	}

	// A call held by an hour of latency must not hold the shutdown up.
	listed := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/instances", nil)
		req.Header.Set("Authorization", "Bearer cn_env_key")
		resp, err := client.Do(req)
		if err != nil {
			listed <- 0
			return
		}
		resp.Body.Close()
		listed <- resp.StatusCode
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d, want 0; stderr %q", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if status := <-listed; status != 503 && status != 0 {
		t.Errorf("call in progress at shutdown: %d", status)
	}
}
