package apiclient_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// listServer serves GET /v1/instances over instances the way a server with
// the given quirks would.
type listServer struct {
	instances   []apiclient.Instance
	ignorePage  bool // always answer the first page
	maxPageSize int  // cap on page_size, 0 for 100
	noMeta      bool // leave out "meta"
}

func (s listServer) handle(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/v1/instances" || q.Get("page_size") != "100" {
			t.Errorf("request %s, want /v1/instances with page_size=100", r.URL)
		}
		size, _ := strconv.Atoi(q.Get("page_size"))
		if s.maxPageSize > 0 {
			size = min(size, s.maxPageSize)
		}
		page, _ := strconv.Atoi(q.Get("page"))
		if page < 1 || s.ignorePage {
			page = 1
		}
		var matching []apiclient.Instance
		for _, inst := range s.instances {
			if region := q.Get("region"); region == "" || inst.Region == region {
				matching = append(matching, inst)
			}
		}
		from := min((page-1)*size, len(matching))
		to := min(from+size, len(matching))
		body := map[string]any{"instances": matching[from:to]}
		if !s.noMeta {
			body["meta"] = apiclient.ListMeta{Total: len(matching), Page: page, PageSize: size}
		}
		writeJSON(w, 200, body)
	}
}

// fleet returns n instances in eu-west-1 called vm-000, vm-001, ...
func fleet(n int) []apiclient.Instance {
	base := time.Date(2025, 3, 14, 8, 0, 0, 0, time.UTC)
	out := make([]apiclient.Instance, n)
	for i := range out {
		created := base.Add(time.Duration(i) * time.Minute)
		out[i] = apiclient.Instance{
			ID: fmt.Sprintf("inst_%04d", i), Name: fmt.Sprintf("vm-%03d", i), Status: "running",
			Region: "eu-west-1", Plan: "standard-4", CreatedAt: &created,
		}
	}
	return out
}

func TestFindInstanceByName(t *testing.T) {
	t.Parallel()
	at := func(minute int) *time.Time {
		ts := time.Date(2025, 3, 14, 9, minute, 0, 0, time.UTC)
		return &ts
	}
	withDuplicates := append(fleet(150),
		apiclient.Instance{ID: "inst_dup_b", Name: "vm-007", Region: "eu-west-1", CreatedAt: at(1)},
		apiclient.Instance{ID: "inst_dup_a", Name: "vm-dup", Region: "eu-west-1", CreatedAt: at(5)},
		apiclient.Instance{ID: "inst_dup_c", Name: "vm-dup", Region: "eu-west-1", CreatedAt: at(2)},
		apiclient.Instance{ID: "inst_dup_0", Name: "vm-dup", Region: "eu-west-1", CreatedAt: at(2)},
		apiclient.Instance{ID: "inst_other", Name: "vm-dup", Region: "us-east-1", CreatedAt: at(0)},
	)
	tests := []struct {
		name      string
		server    listServer
		find      string
		wantID    string // empty for not found
		wantCalls int64
	}{
		{name: "on the third page", server: listServer{instances: fleet(250)}, find: "vm-240", wantID: "inst_0240", wantCalls: 3},
		{name: "on the first page", server: listServer{instances: fleet(250)}, find: "vm-003", wantID: "inst_0003", wantCalls: 3},
		{name: "not found", server: listServer{instances: fleet(250)}, find: "vm-999", wantCalls: 3},
		{name: "full last page stops at total", server: listServer{instances: fleet(300)}, find: "vm-999", wantCalls: 3},
		{name: "full last page without meta", server: listServer{instances: fleet(300), noMeta: true}, find: "vm-299", wantID: "inst_0299", wantCalls: 4},
		{name: "empty account", server: listServer{}, find: "vm-000", wantCalls: 1},
		{name: "server caps page size", server: listServer{instances: fleet(120), maxPageSize: 25}, find: "vm-110", wantID: "inst_0110", wantCalls: 5},
		{name: "server ignores page", server: listServer{instances: fleet(250), ignorePage: true}, find: "vm-240", wantCalls: 2},
		{name: "server ignores page without meta", server: listServer{instances: fleet(250), ignorePage: true, noMeta: true}, find: "vm-050", wantID: "inst_0050", wantCalls: 2},
		{name: "duplicate names pick the oldest", server: listServer{instances: withDuplicates}, find: "vm-dup", wantID: "inst_dup_0", wantCalls: 2},
		{name: "duplicate of an old instance", server: listServer{instances: withDuplicates}, find: "vm-007", wantID: "inst_0007", wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, calls := newTestClient(t, tt.server.handle(t), nil)
			inst, err := c.FindInstanceByName(context.Background(), "eu-west-1", tt.find)
			if err != nil {
				t.Fatalf("FindInstanceByName: %v", err)
			}
			switch {
			case tt.wantID == "" && inst != nil:
				t.Errorf("found %+v, want none", inst)
			case tt.wantID != "" && (inst == nil || inst.ID != tt.wantID):
				t.Errorf("found %+v, want %s", inst, tt.wantID)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestFindInstanceByNameRegionNotFiltered(t *testing.T) {
	t.Parallel()
	// A server that ignores the region filter must not make an instance of
	// another region match.
	instances := []apiclient.Instance{{ID: "inst_us", Name: "vm", Region: "us-east-1"}}
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"instances": instances, "meta": map[string]any{"total": 1}})
	}, nil)
	inst, err := c.FindInstanceByName(context.Background(), "eu-west-1", "vm")
	if err != nil || inst != nil {
		t.Errorf("FindInstanceByName = %+v, %v; want nil, nil", inst, err)
	}
}

func TestFindInstanceByNameFails(t *testing.T) {
	t.Parallel()
	c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			writeAPIError(w, 403, "FORBIDDEN", "no")
			return
		}
		writeJSON(w, 200, map[string]any{"instances": fleet(100), "meta": map[string]any{"total": 200}})
	}, nil)
	inst, err := c.FindInstanceByName(context.Background(), "eu-west-1", "vm-999")
	if err == nil || inst != nil {
		t.Fatalf("FindInstanceByName = %+v, %v; want an error", inst, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}
