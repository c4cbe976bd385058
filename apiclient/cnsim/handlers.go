package cnsim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// maxBodyBytes caps a create body.
const maxBodyBytes = 64 << 10

// fieldError is one entry of a VALIDATION_ERROR's details, the shape the
// API reference documents.
type fieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// account is the body of GET /v1/me.
type account struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ServeHTTP serves the API under /v1. Every call to a known endpoint is
// counted, delayed by the endpoint's Latency, checked for the API key, then
// perhaps failed by the endpoint's ErrorRate, and only then served.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep, id, allow := route(r.Method, r.URL.Path)
	if ep == "" {
		if allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method "+r.Method+" not allowed", nil)
			return
		}
		writeError(w, http.StatusNotFound, "NOT_FOUND", "Resource not found", nil)
		return
	}
	s.calls[ep.index()].Add(1)
	if r.ProtoMajor == 2 {
		s.http2Calls.Add(1)
	}
	f := s.faults.Load()
	if !s.wait(r.Context(), f.Latency[ep]) {
		writeError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "Simulator is shutting down", nil)
		return
	}
	if !s.authorized(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "Invalid API key", nil)
		return
	}
	if s.pick(f.ErrorRate[ep]) == 0 {
		status := f.ErrorStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		writeFault(w, f, status)
		return
	}
	switch ep {
	case EndpointCreate:
		s.create(w, r, f)
	case EndpointGet:
		s.get(w, id)
	case EndpointList:
		s.list(w, r)
	case EndpointDelete:
		s.delete(w, id)
	case EndpointMe:
		writeJSON(w, http.StatusOK, account{ID: "acct_sim", Name: "CloudNexus simulator"})
	}
}

// route returns the endpoint of a call and the instance id in its path; for
// a known path with the wrong method it returns no endpoint and the methods
// allowed; for an unknown path, nothing.
func route(method, path string) (ep Endpoint, id, allow string) {
	const instances = "/v1/instances"
	switch {
	case path == "/v1/me":
		if method == http.MethodGet {
			return EndpointMe, "", ""
		}
		return "", "", "GET"
	case path == instances:
		switch method {
		case http.MethodGet:
			return EndpointList, "", ""
		case http.MethodPost:
			return EndpointCreate, "", ""
		}
		return "", "", "GET, POST"
	case strings.HasPrefix(path, instances+"/"):
		id = path[len(instances)+1:]
		if id == "" || strings.Contains(id, "/") {
			return "", "", ""
		}
		switch method {
		case http.MethodGet:
			return EndpointGet, id, ""
		case http.MethodDelete:
			return EndpointDelete, id, ""
		}
		return "", "", "GET, DELETE"
	}
	return "", "", ""
}

// wait waits d, and reports false when the client went away or the
// simulator was closed first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) authorized(header string) bool {
	const prefix = "Bearer "
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	key := *s.apiKey.Load()
	return key != "" && subtle.ConstantTimeCompare([]byte(header[len(prefix):]), []byte(key)) == 1
}

// create serves POST /v1/instances.
func (s *Server) create(w http.ResponseWriter, r *http.Request, f *Faults) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "Request body is larger than 64 KiB", nil)
		}
		return // otherwise the client has gone
	}
	req, err := decodeCreate(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_JSON", "Request body is not valid JSON", nil)
		return
	}
	if errs := s.validate(req); len(errs) > 0 {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid "+errs[0].Field+" specified", errs)
		return
	}

	var key string
	if !s.ignoreIdem.Load() {
		key = r.Header.Get("Idempotency-Key")
	}
	if key != "" {
		s.mu.RLock()
		prev, live := s.lookupKey(key)
		s.mu.RUnlock()
		if prev != nil {
			s.replay(w, prev, live, req)
			return
		}
	}

	// Draw the instance's future before taking the lock: the hooks are the
	// caller's code and may be slow.
	fate := FateDefault
	if f.Fate != nil {
		fate = f.Fate(req)
	}
	if fate <= FateDefault || fate > FateError {
		switch s.pick(f.StuckPending, f.EndInError) {
		case 0:
			fate = FateStuckPending
		case 1:
			fate = FateError
		default:
			fate = FateRunning
		}
	}
	delay := s.delay
	if s.provisionTime != nil {
		delay = max(0, s.provisionTime(req))
	}
	outcome := s.pick(f.CreateThen500, f.CreateThenDrop)
	now := s.now()
	req.SSHKeys = slices.Clone(req.SSHKeys)

	s.mu.Lock()
	if key != "" {
		// Another call with the same key may have won the race.
		if prev, live := s.lookupKey(key); prev != nil {
			s.mu.Unlock()
			s.replay(w, prev, live, req)
			return
		}
	}
	s.seq++
	rec := &record{
		seq:       s.seq,
		id:        instanceID(s.seq, s.idKey),
		req:       req,
		createdAt: now,
		shownAt:   now.UTC().Truncate(time.Second),
		readyAt:   now.Add(delay),
		fate:      fate,
		ipv4:      instanceIPv4(s.seq),
	}
	s.byID[rec.id] = rec
	s.order = append(s.order, rec)
	s.byRegion[req.Region] = append(s.byRegion[req.Region], rec)
	if key != "" {
		s.idem[key] = rec
	}
	s.creates++
	s.byName[req.Name]++
	s.mu.Unlock()

	switch outcome {
	case 0:
		writeFault(w, f, http.StatusInternalServerError)
	case 1:
		drop(w)
	default:
		writeInstance(w, http.StatusCreated, rec.view(now))
	}
}

// lookupKey returns the instance created with an idempotency key, if any,
// and whether it is still there. s.mu must be held.
func (s *Server) lookupKey(key string) (rec *record, live bool) {
	rec = s.idem[key]
	if rec != nil {
		_, live = s.byID[rec.id]
	}
	return rec, live
}

// replay answers a create whose idempotency key was used before: the
// instance as it is now (terminated when deleted), or 409 when the body is
// not the first one's.
func (s *Server) replay(w http.ResponseWriter, prev *record, live bool, req apiclient.CreateInstanceRequest) {
	if !sameRequest(prev.req, req) {
		writeError(w, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED",
			"Idempotency-Key was already used with a different request body", nil)
		return
	}
	in := prev.view(s.now())
	if !live {
		in.Status = apiclient.StatusTerminated
		in.IPv4 = ""
	}
	w.Header().Set("Idempotent-Replayed", "true")
	writeInstance(w, http.StatusCreated, in)
}

func sameRequest(a, b apiclient.CreateInstanceRequest) bool {
	return a.Name == b.Name && a.Plan == b.Plan && a.Region == b.Region && a.Image == b.Image &&
		slices.Equal(a.SSHKeys, b.SSHKeys)
}

// validate returns an error for each bad field of req, in the order of the
// request body.
func (s *Server) validate(req apiclient.CreateInstanceRequest) []fieldError {
	var errs []fieldError
	const required = "Is required"
	if strings.TrimSpace(req.Name) == "" {
		errs = append(errs, fieldError{"name", required})
	}
	switch {
	case req.Plan == "":
		errs = append(errs, fieldError{"plan", required})
	case !s.plans[req.Plan]:
		errs = append(errs, fieldError{"plan", "Must be one of: " + s.planList})
	}
	switch {
	case req.Region == "":
		errs = append(errs, fieldError{"region", required})
	case !s.regions[req.Region]:
		errs = append(errs, fieldError{"region", "Must be one of: " + s.regionList})
	}
	if strings.TrimSpace(req.Image) == "" {
		errs = append(errs, fieldError{"image", required})
	}
	return errs
}

// get serves GET /v1/instances/{id}.
func (s *Server) get(w http.ResponseWriter, id string) {
	s.mu.RLock()
	rec, ok := s.byID[id]
	s.mu.RUnlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "Instance not found", nil)
		return
	}
	writeInstance(w, http.StatusOK, rec.view(s.now()))
}

// delete serves DELETE /v1/instances/{id}.
func (s *Server) delete(w http.ResponseWriter, id string) {
	s.mu.Lock()
	rec, ok := s.byID[id]
	if ok {
		delete(s.byID, id)
		s.order = removeRecord(s.order, rec)
		s.byRegion[rec.req.Region] = removeRecord(s.byRegion[rec.req.Region], rec)
		s.deletes++
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "Instance not found", nil)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// list serves GET /v1/instances.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, pageNum := DefaultPageSize, 1
	var errs []fieldError
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			errs = append(errs, fieldError{"page_size", "Must be an integer between 1 and " + strconv.Itoa(MaxPageSize)})
		} else {
			size = n
		}
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fieldError{"page", "Must be a positive integer"})
		} else {
			pageNum = n
		}
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid "+errs[0].Field+" specified", errs)
		return
	}
	status, region := q.Get("status"), q.Get("region")

	now := s.now()
	s.mu.RLock()
	src := s.order
	if region != "" {
		src = s.byRegion[region]
	}
	rs, total := page(src, status, now, pageNum, size)
	s.mu.RUnlock()

	out := apiclient.InstanceList{
		Instances: make([]apiclient.Instance, len(rs)),
		Meta:      apiclient.ListMeta{Total: total, Page: pageNum, PageSize: size},
	}
	for i, rec := range rs {
		out.Instances[i] = rec.view(now)
	}
	writeJSON(w, http.StatusOK, out)
}

// drop closes the connection without answering, as a server that crashed
// after doing the work would.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack; aborting resets the stream instead.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// writeFault writes an injected error answer.
func writeFault(w http.ResponseWriter, f *Faults, status int) {
	if f.RetryAfter > 0 {
		secs := (f.RetryAfter + time.Second - 1) / time.Second
		w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}
	code, msg, _ := faultCode(status)
	writeError(w, status, code, msg, nil)
}

// writeError writes the API's documented error envelope.
func writeError(w http.ResponseWriter, status int, code, message string, details []fieldError) {
	body := apiclient.ErrorBody{Error: apiclient.ErrorDetail{Code: code, Message: message}}
	if len(details) > 0 {
		raw, err := json.Marshal(details)
		if err == nil {
			body.Error.Details = raw
		}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types are written; they always encode.
		http.Error(w, `{"error":{"code":"INTERNAL_ERROR","message":"encode"}}`, http.StatusInternalServerError)
		return
	}
	writeBody(w, status, b)
}

// writeInstance writes an instance as writeJSON would, without reflection:
// it is the answer to nearly every call.
func writeInstance(w http.ResponseWriter, status int, in apiclient.Instance) {
	writeBody(w, status, in.AppendJSON(make([]byte, 0, 320)))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
