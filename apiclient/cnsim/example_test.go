package cnsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// Example starts a simulator whose instances run at once, creates an
// instance through plain HTTP and checks what the simulator counted.
func Example() {
	s, err := cnsim.Start(cnsim.Config{Instant: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	body := `{"name":"worker-node-02","plan":"standard-8","region":"eu-west-1","image":"ubuntu-22.04","ssh_keys":["ssh_key_a1b2c3"]}`
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/instances", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cnsim.DefaultAPIKey)
	req.Header.Set("Idempotency-Key", "req-7f3a9c")
	resp, err := s.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var in apiclient.Instance
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode, in.ID, in.Name, in.Status, in.IPv4)
	fmt.Println("creates:", s.Creates(), "calls:", s.Calls(cnsim.EndpointCreate))
	// Output:
	// 201 inst_123b195a worker-node-02 running 10.0.0.1
	// creates: 1 calls: 1
}

// Example_faults makes every create answer 503 with a Retry-After.
func Example_faults() {
	s, err := cnsim.Start(cnsim.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	s.SetFaults(cnsim.Faults{
		ErrorRate:  map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 1},
		RetryAfter: 2 * time.Second,
	})

	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/instances", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+cnsim.DefaultAPIKey)
	resp, err := s.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var e apiclient.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&e)
	fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After"), e.Error.Code, s.Creates())
	// Output:
	// 503 2 SERVICE_UNAVAILABLE 0
}
