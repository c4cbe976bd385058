package cnsim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 14, 8, 22, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t testing.TB, cfg cnsim.Config) *cnsim.Server {
	t.Helper()
	s, err := cnsim.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do calls the simulator at path (relative to /v1) with the default API key,
// unless header (pairs of name and value) sets Authorization; an empty
// Authorization sends none.
func do(t *testing.T, s *cnsim.Server, method, path, body string, header ...string) response {
	t.Helper()
	resp, err := send(s.Client(), s, method, path, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func send(c *http.Client, s *cnsim.Server, method, path, body string, header ...string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+cnsim.DefaultAPIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Authorization" && header[i+1] == "" {
			req.Header.Del("Authorization")
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func createBody(name, region string) string {
	return fmt.Sprintf(`{"name":%q,"plan":"standard-2","region":%q,"image":"ubuntu-22.04","ssh_keys":["ssh_key_a1b2c3"]}`, name, region)
}

// create creates an instance and fails the test unless it is answered 201.
func create(t *testing.T, s *cnsim.Server, name, region string, header ...string) apiclient.Instance {
	t.Helper()
	r := do(t, s, "POST", "/instances", createBody(name, region), header...)
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: status %d, body %s", name, r.status, r.body)
	}
	return decode[apiclient.Instance](t, r)
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func wantError(t *testing.T, r response, status int, body string) {
	t.Helper()
	if r.status != status || string(r.body) != body {
		t.Errorf("got %d %s\nwant %d %s", r.status, r.body, status, body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

const unauthorized = `{"error":{"code":"UNAUTHORIZED","message":"Invalid API key"}}`

func TestAuth(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{name: "no header", auth: "", status: 401},
		{name: "wrong key", auth: "Bearer cn_live_wrong", status: 401},
		{name: "basic scheme", auth: "Basic " + cnsim.DefaultAPIKey, status: 401},
		{name: "bearer without key", auth: "Bearer ", status: 401},
		{name: "key with suffix", auth: "Bearer " + cnsim.DefaultAPIKey + "x", status: 401},
		{name: "right key", auth: "Bearer " + cnsim.DefaultAPIKey, status: 200},
		{name: "lower-case scheme", auth: "bearer " + cnsim.DefaultAPIKey, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/me", "/instances", "/instances/inst_00000000"} {
				r := do(t, s, "GET", path, "", "Authorization", tt.auth)
				if tt.status == 401 {
					wantError(t, r, 401, unauthorized)
					if got := r.header.Get("WWW-Authenticate"); got != "Bearer" {
						t.Errorf("WWW-Authenticate = %q", got)
					}
				} else if path == "/me" && r.status != tt.status {
					t.Errorf("GET %s: status %d, want %d", path, r.status, tt.status)
				}
			}
			r := do(t, s, "POST", "/instances", createBody("web", "eu-west-1"), "Authorization", tt.auth)
			if tt.status == 401 {
				wantError(t, r, 401, unauthorized)
			} else if r.status != 201 {
				t.Errorf("POST: status %d", r.status)
			}
		})
	}
}

func TestSetAPIKey(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{APIKey: "cn_live_right"})
	auth := []string{"Authorization", "Bearer cn_live_client"}
	wantError(t, do(t, s, "GET", "/me", "", auth...), 401, unauthorized)
	s.SetAPIKey("cn_live_client")
	if r := do(t, s, "GET", "/me", "", auth...); r.status != 200 {
		t.Fatalf("after SetAPIKey: %d %s", r.status, r.body)
	}
	wantError(t, do(t, s, "GET", "/me", "", "Authorization", "Bearer cn_live_right"), 401, unauthorized)
	s.SetAPIKey("")
	wantError(t, do(t, s, "GET", "/me", "", auth...), 401, unauthorized)
}

func TestMe(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	r := do(t, s, "GET", "/me", "")
	if r.status != 200 || string(r.body) != `{"id":"acct_sim","name":"CloudNexus simulator"}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	plans := "standard-1, standard-2, standard-4, standard-8, standard-16, highmem-4, highmem-8"
	tests := []struct {
		name   string
		cfg    cnsim.Config
		body   string
		status int
		want   string
	}{
		{
			name:   "documented region error",
			body:   `{"name":"worker-node-02","plan":"standard-8","region":"eu-west-2","image":"ubuntu-22.04"}`,
			status: 400,
			want:   `{"error":{"code":"VALIDATION_ERROR","message":"Invalid region specified","details":[{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]}}`,
		},
		{
			name:   "every field bad",
			body:   `{"name":" ","plan":"tiny","region":"","image":""}`,
			status: 400,
			want: `{"error":{"code":"VALIDATION_ERROR","message":"Invalid name specified","details":[` +
				`{"field":"name","reason":"Is required"},` +
				`{"field":"plan","reason":"Must be one of: ` + plans + `"},` +
				`{"field":"region","reason":"Is required"},` +
				`{"field":"image","reason":"Is required"}]}}`,
		},
		{
			name:   "empty object",
			body:   `{}`,
			status: 400,
			want: `{"error":{"code":"VALIDATION_ERROR","message":"Invalid name specified","details":[` +
				`{"field":"name","reason":"Is required"},{"field":"plan","reason":"Is required"},` +
				`{"field":"region","reason":"Is required"},{"field":"image","reason":"Is required"}]}}`,
		},
		{
			name:   "configured regions and plans",
			cfg:    cnsim.Config{Regions: []string{"mars-1"}, Plans: []string{"nano"}},
			body:   `{"name":"a","plan":"standard-2","region":"us-east-1","image":"x"}`,
			status: 400,
			want: `{"error":{"code":"VALIDATION_ERROR","message":"Invalid plan specified","details":[` +
				`{"field":"plan","reason":"Must be one of: nano"},{"field":"region","reason":"Must be one of: mars-1"}]}}`,
		},
		{
			name:   "not json",
			body:   `{"name":`,
			status: 400,
			want:   `{"error":{"code":"INVALID_JSON","message":"Request body is not valid JSON"}}`,
		},
		{
			name:   "wrong json type",
			body:   `{"name":42}`,
			status: 400,
			want:   `{"error":{"code":"INVALID_JSON","message":"Request body is not valid JSON"}}`,
		},
		{
			name:   "too large",
			body:   `{"name":"` + strings.Repeat("a", 70<<10) + `"}`,
			status: 413,
			want:   `{"error":{"code":"PAYLOAD_TOO_LARGE","message":"Request body is larger than 64 KiB"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, tt.cfg)
			wantError(t, do(t, s, "POST", "/instances", tt.body), tt.status, tt.want)
			if n := s.Creates(); n != 0 {
				t.Errorf("Creates = %d, want 0", n)
			}
		})
	}
}

var idPattern = regexp.MustCompile(`^inst_[0-9a-f]{8}$`)

func TestCreatePendingThenRunning(t *testing.T) {
	t.Parallel()
	clock := newClock()
	clock.Advance(1500 * time.Millisecond) // created_at is whole seconds
	s := start(t, cnsim.Config{Now: clock.Now, ProvisionDelay: 30 * time.Second})

	r := do(t, s, "POST", "/instances", createBody("worker-node-02", "eu-west-1"))
	if r.status != 201 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	in := decode[apiclient.Instance](t, r)
	if !idPattern.MatchString(in.ID) {
		t.Errorf("id %q does not match %v", in.ID, idPattern)
	}
	want := fmt.Sprintf(`{"id":%q,"name":"worker-node-02","status":"pending","region":"eu-west-1","plan":"standard-2","image":"ubuntu-22.04","created_at":"2025-03-14T08:22:01Z"}`, in.ID)
	if string(r.body) != want {
		t.Errorf("body\n%s\nwant\n%s", r.body, want)
	}

	get := func() apiclient.Instance {
		t.Helper()
		r := do(t, s, "GET", "/instances/"+in.ID, "")
		if r.status != 200 {
			t.Fatalf("get: %d %s", r.status, r.body)
		}
		return decode[apiclient.Instance](t, r)
	}
	clock.Advance(30*time.Second - time.Nanosecond)
	if got := get(); got.Status != "pending" || got.IPv4 != "" {
		t.Fatalf("just before the delay: %+v", got)
	}
	clock.Advance(time.Nanosecond)
	got := get()
	if got.Status != "running" || got.IPv4 == "" {
		t.Fatalf("after the delay: %+v", got)
	}
	if direct, ok := s.Instance(in.ID); !ok || direct.Status != "running" || direct.IPv4 != got.IPv4 {
		t.Errorf("Instance(%s) = %+v, %v", in.ID, direct, ok)
	}
}

func TestProvisionTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     cnsim.Config
		advance time.Duration
		want    map[string]string
	}{
		{
			name: "default delay is 2s",
			cfg:  cnsim.Config{},
			want: map[string]string{"a": "pending", "b": "pending"},
		},
		{
			name:    "default delay is over",
			cfg:     cnsim.Config{},
			advance: 2 * time.Second,
			want:    map[string]string{"a": "running", "b": "running"},
		},
		{
			name: "instant",
			cfg:  cnsim.Config{Instant: true},
			want: map[string]string{"a": "running", "b": "running"},
		},
		{
			name: "per instance",
			cfg: cnsim.Config{Instant: true, ProvisionTime: func(req apiclient.CreateInstanceRequest) time.Duration {
				if req.Name == "a" {
					return time.Minute
				}
				return -time.Second
			}},
			advance: 59 * time.Second,
			want:    map[string]string{"a": "pending", "b": "running"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			tt.cfg.Now = c.Now
			s := start(t, tt.cfg)
			ids := map[string]string{}
			for name := range tt.want {
				ids[name] = create(t, s, name, "us-east-1").ID
			}
			c.Advance(tt.advance)
			for name, status := range tt.want {
				if in, _ := s.Instance(ids[name]); in.Status != status {
					t.Errorf("%s: status %q, want %q", name, in.Status, status)
				}
			}
		})
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		ignore      bool
		ignoreLater bool // switch with SetIgnoreIdempotencyKey instead
		creates     int
	}{
		{name: "honoured", creates: 1},
		{name: "ignored", ignore: true, creates: 2},
		{name: "ignored at runtime", ignoreLater: true, creates: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			s := start(t, cnsim.Config{Now: clock.Now, IgnoreIdempotencyKey: tt.ignore})
			if tt.ignoreLater {
				s.SetIgnoreIdempotencyKey(true)
			}
			key := []string{"Idempotency-Key", "req-7f3a9c"}
			first := create(t, s, "web", "eu-west-1", key...)
			clock.Advance(time.Hour)
			r := do(t, s, "POST", "/instances", createBody("web", "eu-west-1"), key...)
			if r.status != 201 {
				t.Fatalf("second create: %d %s", r.status, r.body)
			}
			second := decode[apiclient.Instance](t, r)
			replayed := r.header.Get("Idempotent-Replayed")
			if tt.creates == 1 {
				if second.ID != first.ID || second.Status != "running" || second.IPv4 == "" || replayed != "true" {
					t.Errorf("replay = %+v, Idempotent-Replayed %q; want instance %s running", second, replayed, first.ID)
				}
			} else if second.ID == first.ID || replayed != "" {
				t.Errorf("second create = %+v, Idempotent-Replayed %q; want a new instance", second, replayed)
			}
			if got := s.Creates(); got != tt.creates {
				t.Errorf("Creates = %d, want %d", got, tt.creates)
			}
			if got := s.CreatesByName("web"); got != tt.creates {
				t.Errorf("CreatesByName = %d, want %d", got, tt.creates)
			}
			wantDups := map[string]int{}
			if tt.creates > 1 {
				wantDups["web"] = tt.creates
			}
			if got := s.DuplicateNames(); !mapsEqual(got, wantDups) {
				t.Errorf("DuplicateNames = %v, want %v", got, wantDups)
			}
		})
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestIdempotencyKeyReused(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	key := []string{"Idempotency-Key", "req-1"}
	create(t, s, "web", "eu-west-1", key...)
	tests := []struct {
		name string
		body string
	}{
		{name: "other name", body: createBody("db", "eu-west-1")},
		{name: "other region", body: createBody("web", "us-east-1")},
		{name: "other ssh keys", body: `{"name":"web","plan":"standard-2","region":"eu-west-1","image":"ubuntu-22.04"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, do(t, s, "POST", "/instances", tt.body, key...), 409,
				`{"error":{"code":"IDEMPOTENCY_KEY_REUSED","message":"Idempotency-Key was already used with a different request body"}}`)
		})
	}
	t.Run("same body, other spacing", func(t *testing.T) {
		t.Parallel()
		body := strings.ReplaceAll(createBody("web", "eu-west-1"), ",", " , ")
		if r := do(t, s, "POST", "/instances", body, key...); r.status != 201 {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
}

func TestIdempotencyAfterDelete(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{Instant: true})
	key := []string{"Idempotency-Key", "req-1"}
	in := create(t, s, "web", "eu-west-1", key...)
	if r := do(t, s, "DELETE", "/instances/"+in.ID, ""); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	again := create(t, s, "web", "eu-west-1", key...)
	if again.ID != in.ID || again.Status != "terminated" || again.IPv4 != "" {
		t.Errorf("replay after delete = %+v", again)
	}
	if s.Creates() != 1 {
		t.Errorf("Creates = %d", s.Creates())
	}
}

func TestIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	var wg sync.WaitGroup
	ids := make([]string, 32)
	for i := range ids {
		wg.Go(func() {
			r, err := send(s.Client(), s, "POST", "/instances", createBody("web", "eu-west-1"), "Idempotency-Key", "same")
			if err != nil || r.status != 201 {
				t.Errorf("create: %v %d %s", err, r.status, r.body)
				return
			}
			var in apiclient.Instance
			_ = json.Unmarshal(r.body, &in)
			ids[i] = in.ID
		})
	}
	wg.Wait()
	if s.Creates() != 1 {
		t.Errorf("Creates = %d, want 1", s.Creates())
	}
	if ids[0] == "" || slices.ContainsFunc(ids, func(id string) bool { return id != ids[0] }) {
		t.Errorf("ids differ: %v", ids)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	clock := newClock()
	// Instances named slow-* stay pending for an hour, the others run at
	// once.
	s := start(t, cnsim.Config{Now: clock.Now, ProvisionTime: func(req apiclient.CreateInstanceRequest) time.Duration {
		if strings.HasPrefix(req.Name, "slow") {
			return time.Hour
		}
		return 0
	}})
	var all []string
	for i := range 12 {
		region := []string{"us-east-1", "eu-west-1", "ap-south-1"}[i%3]
		name := fmt.Sprintf("fast-%02d", i)
		if i%4 == 0 {
			name = fmt.Sprintf("slow-%02d", i)
		}
		create(t, s, name, region)
		all = append(all, name)
	}
	deleted := create(t, s, "deleted", "us-east-1")
	if r := do(t, s, "DELETE", "/instances/"+deleted.ID, ""); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}

	tests := []struct {
		name  string
		query string
		names []string
		meta  apiclient.ListMeta
	}{
		{name: "defaults", query: "", names: all, meta: apiclient.ListMeta{Total: 12, Page: 1, PageSize: 25}},
		{name: "first page", query: "?page_size=5", names: all[:5], meta: apiclient.ListMeta{Total: 12, Page: 1, PageSize: 5}},
		{name: "last page", query: "?page_size=5&page=3", names: all[10:], meta: apiclient.ListMeta{Total: 12, Page: 3, PageSize: 5}},
		{name: "past the end", query: "?page_size=5&page=4", names: nil, meta: apiclient.ListMeta{Total: 12, Page: 4, PageSize: 5}},
		{name: "huge page", query: "?page=9223372036854775807&page_size=100", names: nil, meta: apiclient.ListMeta{Total: 12, Page: 9223372036854775807, PageSize: 100}},
		{name: "max page size", query: "?page_size=100", names: all, meta: apiclient.ListMeta{Total: 12, Page: 1, PageSize: 100}},
		{
			name:  "region",
			query: "?region=eu-west-1",
			names: []string{"fast-01", "slow-04", "fast-07", "fast-10"},
			meta:  apiclient.ListMeta{Total: 4, Page: 1, PageSize: 25},
		},
		{
			name:  "region page 2",
			query: "?region=us-east-1&page_size=2&page=2",
			names: []string{"fast-06", "fast-09"},
			meta:  apiclient.ListMeta{Total: 4, Page: 2, PageSize: 2},
		},
		{
			name:  "status pending",
			query: "?status=pending",
			names: []string{"slow-00", "slow-04", "slow-08"},
			meta:  apiclient.ListMeta{Total: 3, Page: 1, PageSize: 25},
		},
		{
			name:  "status running page 2",
			query: "?status=running&page_size=4&page=2",
			names: []string{"fast-06", "fast-07", "fast-09", "fast-10"},
			meta:  apiclient.ListMeta{Total: 9, Page: 2, PageSize: 4},
		},
		{
			name:  "status and region",
			query: "?status=running&region=ap-south-1&page_size=2&page=2",
			names: []string{"fast-11"},
			meta:  apiclient.ListMeta{Total: 3, Page: 2, PageSize: 2},
		},
		{
			name:  "status past the end",
			query: "?status=running&page_size=4&page=4",
			meta:  apiclient.ListMeta{Total: 9, Page: 4, PageSize: 4},
		},
		{name: "unknown region", query: "?region=eu-west-2", meta: apiclient.ListMeta{Total: 0, Page: 1, PageSize: 25}},
		{name: "unknown status", query: "?status=stopped", meta: apiclient.ListMeta{Total: 0, Page: 1, PageSize: 25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, "GET", "/instances"+tt.query, "")
			if r.status != 200 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			if !strings.Contains(string(r.body), `"instances":[`) {
				t.Errorf("instances is not an array: %s", r.body)
			}
			list := decode[apiclient.InstanceList](t, r)
			var names []string
			for _, in := range list.Instances {
				names = append(names, in.Name)
			}
			if !slices.Equal(names, tt.names) {
				t.Errorf("names = %v, want %v", names, tt.names)
			}
			if list.Meta != tt.meta {
				t.Errorf("meta = %+v, want %+v", list.Meta, tt.meta)
			}
		})
	}
}

func TestListBadParameters(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	pageSize := `{"field":"page_size","reason":"Must be an integer between 1 and 100"}`
	page := `{"field":"page","reason":"Must be a positive integer"}`
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{name: "page size over max", query: "?page_size=101", want: `"Invalid page_size specified","details":[` + pageSize + `]`},
		{name: "page size zero", query: "?page_size=0", want: `"Invalid page_size specified","details":[` + pageSize + `]`},
		{name: "page size not a number", query: "?page_size=ten", want: `"Invalid page_size specified","details":[` + pageSize + `]`},
		{name: "page zero", query: "?page=0", want: `"Invalid page specified","details":[` + page + `]`},
		{name: "both", query: "?page=-1&page_size=1000", want: `"Invalid page_size specified","details":[` + pageSize + `,` + page + `]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, do(t, s, "GET", "/instances"+tt.query, ""), 400,
				`{"error":{"code":"VALIDATION_ERROR","message":`+tt.want+`}}`)
		})
	}
}

const notFound = `{"error":{"code":"NOT_FOUND","message":"Instance not found"}}`

func TestDelete(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	a := create(t, s, "a", "us-east-1")
	b := create(t, s, "b", "us-east-1")
	c := create(t, s, "c", "us-east-1")

	r := do(t, s, "DELETE", "/instances/"+b.ID, "")
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %q", r.status, r.body)
	}
	wantError(t, do(t, s, "GET", "/instances/"+b.ID, ""), 404, notFound)
	wantError(t, do(t, s, "DELETE", "/instances/"+b.ID, ""), 404, notFound)
	wantError(t, do(t, s, "DELETE", "/instances/inst_ffffffff", ""), 404, notFound)

	for _, query := range []string{"", "?region=us-east-1"} {
		list := decode[apiclient.InstanceList](t, do(t, s, "GET", "/instances"+query, ""))
		if len(list.Instances) != 2 || list.Instances[0].ID != a.ID || list.Instances[1].ID != c.ID || list.Meta.Total != 2 {
			t.Errorf("list%s after delete = %+v", query, list)
		}
	}
	if _, ok := s.Instance(b.ID); ok {
		t.Error("Instance finds a deleted instance")
	}
	if n := len(s.Instances()); n != 2 {
		t.Errorf("Instances: %d, want 2", n)
	}
	if s.Creates() != 3 || s.CreatesByName("b") != 1 || s.Deletes() != 1 {
		t.Errorf("Creates %d, CreatesByName(b) %d, Deletes %d; want 3, 1, 1", s.Creates(), s.CreatesByName("b"), s.Deletes())
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	tests := []struct {
		name   string
		method string
		path   string
		status int
		allow  string
		body   string
	}{
		{name: "unknown path", method: "GET", path: "/v1/servers", status: 404, body: `{"error":{"code":"NOT_FOUND","message":"Resource not found"}}`},
		{name: "no version", method: "GET", path: "/instances", status: 404, body: `{"error":{"code":"NOT_FOUND","message":"Resource not found"}}`},
		{name: "empty id", method: "GET", path: "/v1/instances/", status: 404, body: `{"error":{"code":"NOT_FOUND","message":"Resource not found"}}`},
		{name: "nested path", method: "GET", path: "/v1/instances/a/b", status: 404, body: `{"error":{"code":"NOT_FOUND","message":"Resource not found"}}`},
		{name: "unknown id", method: "GET", path: "/v1/instances/inst_12345678", status: 404, body: notFound},
		{name: "put instances", method: "PUT", path: "/v1/instances", status: 405, allow: "GET, POST", body: `{"error":{"code":"METHOD_NOT_ALLOWED","message":"Method PUT not allowed"}}`},
		{name: "post instance", method: "POST", path: "/v1/instances/inst_12345678", status: 405, allow: "GET, DELETE", body: `{"error":{"code":"METHOD_NOT_ALLOWED","message":"Method POST not allowed"}}`},
		{name: "delete me", method: "DELETE", path: "/v1/me", status: 405, allow: "GET", body: `{"error":{"code":"METHOD_NOT_ALLOWED","message":"Method DELETE not allowed"}}`},
	}
	base := strings.TrimSuffix(s.URL(), "/v1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			req.Header.Set("Authorization", "Bearer "+cnsim.DefaultAPIKey)
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			wantError(t, response{status: resp.StatusCode, header: resp.Header, body: b}, tt.status, tt.body)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	in := create(t, s, "a", "us-east-1")
	create(t, s, "a", "us-east-1")
	create(t, s, "b", "us-east-1")
	do(t, s, "GET", "/instances/"+in.ID, "")
	do(t, s, "GET", "/instances/"+in.ID, "", "Authorization", "")
	do(t, s, "GET", "/instances", "")
	do(t, s, "DELETE", "/instances/"+in.ID, "")
	do(t, s, "DELETE", "/instances/"+in.ID, "")
	do(t, s, "GET", "/me", "")
	do(t, s, "POST", "/instances", "{}") // 400, counted as a call, not a create
	s.SetFaults(cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{cnsim.EndpointMe: 1}})
	do(t, s, "GET", "/me", "")
	do(t, s, "GET", "/nowhere", "")

	want := map[cnsim.Endpoint]int{
		cnsim.EndpointCreate: 4, cnsim.EndpointGet: 2, cnsim.EndpointList: 1,
		cnsim.EndpointDelete: 2, cnsim.EndpointMe: 2, "unknown": 0,
	}
	for e, n := range want {
		if got := s.Calls(e); got != n {
			t.Errorf("Calls(%s) = %d, want %d", e, got, n)
		}
	}
	if s.Creates() != 3 || s.Deletes() != 1 || s.CreatesByName("a") != 2 || s.CreatesByName("c") != 0 {
		t.Errorf("Creates %d Deletes %d CreatesByName(a) %d", s.Creates(), s.Deletes(), s.CreatesByName("a"))
	}
	if got := s.DuplicateNames(); !mapsEqual(got, map[string]int{"a": 2}) {
		t.Errorf("DuplicateNames = %v", got)
	}

	s.ResetCounters()
	for _, e := range cnsim.Endpoints() {
		if s.Calls(e) != 0 {
			t.Errorf("Calls(%s) = %d after reset", e, s.Calls(e))
		}
	}
	if s.Creates() != 0 || s.Deletes() != 0 || len(s.DuplicateNames()) != 0 {
		t.Errorf("after reset: Creates %d Deletes %d DuplicateNames %v", s.Creates(), s.Deletes(), s.DuplicateNames())
	}
	if len(s.Instances()) != 2 {
		t.Errorf("Instances after reset = %d, want 2", len(s.Instances()))
	}
}

func TestManyInstances(t *testing.T) {
	t.Parallel()
	const n = 10_000
	s := start(t, cnsim.Config{Instant: true})
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				r, err := send(s.Client(), s, "POST", "/instances", createBody(fmt.Sprintf("node-%05d", i), "us-east-1"))
				if err != nil || r.status != 201 {
					t.Errorf("create %d: %v %d", i, err, r.status)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ids := make(map[string]bool, n)
	ips := make(map[string]bool, n)
	for page := 1; ; page++ {
		list := decode[apiclient.InstanceList](t, do(t, s, "GET", fmt.Sprintf("/instances?region=us-east-1&page_size=100&page=%d", page), ""))
		if list.Meta.Total != n {
			t.Fatalf("total = %d, want %d", list.Meta.Total, n)
		}
		if len(list.Instances) == 0 {
			break
		}
		for _, in := range list.Instances {
			if !idPattern.MatchString(in.ID) || ids[in.ID] || in.IPv4 == "" || ips[in.IPv4] {
				t.Fatalf("bad or repeated id or ipv4: %+v", in)
			}
			ids[in.ID] = true
			ips[in.IPv4] = true
		}
	}
	if len(ids) != n || s.Creates() != n || len(s.DuplicateNames()) != 0 {
		t.Errorf("listed %d, Creates %d, DuplicateNames %d", len(ids), s.Creates(), len(s.DuplicateNames()))
	}
	list := decode[apiclient.InstanceList](t, do(t, s, "GET", "/instances?status=running&page=100&page_size=100", ""))
	if list.Meta.Total != n || len(list.Instances) != 100 {
		t.Errorf("status=running last page: total %d, %d instances", list.Meta.Total, len(list.Instances))
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  cnsim.Config
		want string // in the error; empty for valid
	}{
		{name: "zero", cfg: cnsim.Config{}},
		{name: "negative delay", cfg: cnsim.Config{ProvisionDelay: -time.Second}, want: "ProvisionDelay"},
		{name: "empty region", cfg: cnsim.Config{Regions: []string{"us-east-1", ""}}, want: "Regions"},
		{name: "empty plan", cfg: cnsim.Config{Plans: []string{" "}}, want: "Plans"},
		{name: "bad faults", cfg: cnsim.Config{Faults: cnsim.Faults{StuckPending: 2}}, want: "Faults.StuckPending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := cnsim.Start(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error = %v, want one naming %s", err, tt.want)
			}
			if s != nil {
				s.Close()
			}
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			cnsim.New(tt.cfg)
		})
	}
}

// TestHandler checks that a simulator from New serves on another server.
func TestHandler(t *testing.T) {
	t.Parallel()
	s := cnsim.New(cnsim.Config{})
	defer s.Close()
	if s.URL() != "" {
		t.Errorf("URL of an unstarted simulator = %q", s.URL())
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", s.Handler())
	req, _ := http.NewRequest("GET", "/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+cnsim.DefaultAPIKey)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("status %d %s", rec.Code, rec.Body)
	}
}

// TestStartServesH2C: a simulator from Start answers HTTP/1.1 and HTTP/2
// without TLS on the same address, and counts the calls that came over
// HTTP/2.
func TestStartServesH2C(t *testing.T) {
	sim, err := cnsim.Start(cnsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	get := func(tr *http.Transport) int {
		t.Helper()
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, sim.URL()+"/me", nil)
		req.Header.Set("Authorization", "Bearer "+cnsim.DefaultAPIKey)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /me: %s", resp.Status)
		}
		return resp.ProtoMajor
	}
	h1 := &http.Transport{}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	if p := get(h1); p != 1 {
		t.Errorf("plain client answered over HTTP/%d, want 1", p)
	}
	if n := sim.HTTP2Calls(); n != 0 {
		t.Errorf("HTTP2Calls = %d after an HTTP/1.1 call, want 0", n)
	}
	if p := get(h2c); p != 2 {
		t.Errorf("h2c client answered over HTTP/%d, want 2", p)
	}
	if n, all := sim.HTTP2Calls(), sim.Calls(cnsim.EndpointMe); n != 1 || all != 2 {
		t.Errorf("HTTP2Calls = %d of %d calls, want 1 of 2", n, all)
	}
	sim.ResetCounters()
	if n := sim.HTTP2Calls(); n != 0 {
		t.Errorf("HTTP2Calls = %d after ResetCounters", n)
	}
}
