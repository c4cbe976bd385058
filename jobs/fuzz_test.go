package jobs_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudnexus/provisioner/jobs"
)

// FuzzDecodeRequest checks the promises DecodeRequest makes to the worker
// about any message: it never panics, a request it accepts can be sent and
// fingerprinted, a rejected message yields nothing, and a validation error
// always comes with a request_id to answer on. It also checks that
// DecodeRequest gives exactly what the reference implementation in
// reference_test.go gives.
func FuzzDecodeRequest(f *testing.F) {
	err := filepath.WalkDir("../testdata/requests", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`{"request_id":"a"}`,
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i"}`,
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i"}}`,
		`{"request_id":"a","name":null,"plan":"","region":" ","image":1,"ssh_keys":[""],"metadata":{"k":null}}`,
		`{"request_id":"a","name":"\u00e9\ud800","plan":"p","region":"r","image":"i","metadata":{"<&>":"\u2028"}}`,
		`{"request_id":"a","request_id":"b.c","name":"n","plan":"p","region":"r","image":"i"}`,
		`{"Request_ID":"a","name":"n","plan":"p","region":"r","image":"i"}`,
		// Around the fast paths for plain strings and their fallback.
		"{\"request_id\":\"a\",\"name\":\"\xff\",\"plan\":\"\\u0000\",\"region\":\"\\t\",\"image\":\"i\",\"ssh_keys\":[\"\xed\xa0\x80\"]}",
		"{ \"request_id\" : \"a\" ,\"name\":\"n\",\"plan\":\"p\",\"region\":\"r\",\"image\":\"i\",\n\"ssh_keys\" : [ \"k\" ,\t\"l\" ] ,\r\"metadata\" : { \"k\" : \"v\" , \"k\" : \"\" } }",
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i","ssh_keys":[],"metadata":{}}`,
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i","ssh_keys":[null,"k"],"metadata":{"k":"v","k":null}}`,
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i","metadata":{"k":null,"k":"v"},"ssh_keys":["k",1]}`,
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i"} {"request_id":"b"}`,
		`{"request_id":"a","name":"n","plan":"p","region":"r","image":"i"}]`,
		`[1] {`,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := jobs.DecodeRequest(data)

		// Same message, same answer: a redelivery must be treated the same.
		req2, err2 := jobs.DecodeRequest(data)
		if !reflect.DeepEqual(req, req2) || errString(err) != errString(err2) {
			t.Fatalf("two decodes differ: %+v %v / %+v %v", req, err, req2, err2)
		}

		// Same answer as the straightforward implementation.
		ref, refErr := decodeRequestReference(data)
		if !reflect.DeepEqual(req, ref) || !reflect.DeepEqual(err, refErr) {
			t.Fatalf("DecodeRequest differs from the reference:\ngot  %#v %T %v\nwant %#v %T %v", req, err, err, ref, refErr, refErr)
		}

		var (
			rerr *jobs.RejectError
			verr *jobs.ValidationError
		)
		switch {
		case err == nil:
			checkAccepted(t, req)
		case errors.As(err, &rerr):
			if !reflect.DeepEqual(req, jobs.Request{}) {
				t.Fatalf("reject (%v) with a non-empty request %+v", err, req)
			}
			if !jobs.IsReject(err) || rerr.Reason == "" {
				t.Fatalf("reject error %#v", rerr)
			}
		case errors.As(err, &verr):
			if !jobs.ValidRequestID(req.RequestID) {
				t.Fatalf("validation error (%v) with request_id %q", err, req.RequestID)
			}
			if len(verr.Fields) == 0 {
				t.Fatalf("validation error without fields")
			}
			for _, fe := range verr.Fields {
				if fe.Reason == "" {
					t.Fatalf("field error %+v without a reason", fe)
				}
			}
			if jobs.IsReject(err) {
				t.Fatalf("IsReject(%v) = true for a validation error", err)
			}
		default:
			t.Fatalf("error %v of type %T, want *RejectError or *ValidationError", err, err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkAccepted checks a request DecodeRequest accepted.
func checkAccepted(t *testing.T, req jobs.Request) {
	t.Helper()
	if !jobs.ValidRequestID(req.RequestID) {
		t.Fatalf("accepted request_id %q", req.RequestID)
	}
	for name, v := range map[string]string{"name": req.Name, "plan": req.Plan, "region": req.Region, "image": req.Image} {
		if strings.TrimSpace(v) == "" || len(v) > jobs.MaxFieldLength {
			t.Fatalf("accepted %s %q", name, v)
		}
	}
	if len(req.SSHKeys) > jobs.MaxSSHKeys || len(req.Metadata) > jobs.MaxMetadataPairs {
		t.Fatalf("accepted %d ssh_keys and %d metadata pairs", len(req.SSHKeys), len(req.Metadata))
	}
	for _, k := range req.SSHKeys {
		if strings.TrimSpace(k) == "" || len(k) > jobs.MaxSSHKeyLength {
			t.Fatalf("accepted ssh key %q", k)
		}
	}

	// What is accepted can be encoded again (as the worker stores it) and
	// decodes to the same request.
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("marshal accepted request: %v", err)
	}
	again, err := jobs.DecodeRequest(b)
	if err != nil {
		t.Fatalf("re-encoded request %s: %v", b, err)
	}
	if again.Fingerprint() != req.Fingerprint() {
		t.Fatalf("fingerprint changed after re-encoding: %+v / %+v", req, again)
	}
	// The fingerprint is the hash of exactly what encoding/json writes, as
	// stored job records expect.
	sum := sha256.Sum256(b)
	if want := hex.EncodeToString(sum[:]); req.Fingerprint() != want {
		t.Fatalf("fingerprint %s, want the SHA-256 of %s (%s)", req.Fingerprint(), b, want)
	}
}
