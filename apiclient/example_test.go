package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/cloudnexus/provisioner/apiclient"
)

func ExampleClient_CreateInstance() {
	// A stand-in for https://api.cloudnexus.io/v1.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.CreateInstanceRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(apiclient.Instance{
			ID: "inst_29f8b3a1", Name: req.Name, Status: apiclient.StatusPending, Region: req.Region, Plan: req.Plan,
		})
	}))
	defer srv.Close()

	c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/v1", APIKey: "cn_live_example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	inst, err := c.CreateInstance(context.Background(), apiclient.CreateInstanceRequest{
		Name:    "worker-node-02",
		Plan:    "standard-8",
		Region:  "eu-west-1",
		Image:   "ubuntu-22.04",
		SSHKeys: []string{"ssh_key_a1b2c3"},
	}, "req-7f3a9c")
	if err != nil {
		fmt.Println(err, apiclient.Retryable(err))
		return
	}
	fmt.Println(inst.ID, inst.Name, inst.Status)
	// Output: inst_29f8b3a1 worker-node-02 pending
}

func ExampleError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"VALIDATION_ERROR","message":"Invalid region specified",`+
			`"details":[{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]}}`)
	}))
	defer srv.Close()
	c, _ := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/v1", APIKey: "cn_live_example"})
	defer c.Close()

	_, err := c.CreateInstance(context.Background(), apiclient.CreateInstanceRequest{Name: "n", Region: "mars-1"}, "req-1")
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code, apiclient.Retryable(err))
		fmt.Println(string(apiErr.Details))
	}
	fmt.Println(err)
	// Output:
	// 400 VALIDATION_ERROR false
	// [{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]
	// cloudnexus POST /instances: 400 VALIDATION_ERROR: Invalid region specified
}
