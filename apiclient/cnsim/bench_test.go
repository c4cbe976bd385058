package cnsim_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// The benchmarks measure the simulator and an in-process net/http client
// together, as a throughput benchmark of the provisioner would see it.

func BenchmarkGet(b *testing.B) {
	s := start(b, cnsim.Config{})
	r, err := send(s.Client(), s, "POST", "/instances", createBody("web", "us-east-1"))
	if err != nil || r.status != http.StatusCreated {
		b.Fatalf("create: %v %d", err, r.status)
	}
	id := string(r.body[7:20]) // {"id":"inst_xxxxxxxx"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := send(s.Client(), s, "GET", "/instances/"+id, "")
			if err != nil || r.status != http.StatusOK {
				b.Errorf("get: %v %d", err, r.status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkCreate(b *testing.B) {
	s := start(b, cnsim.Config{})
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r, err := send(s.Client(), s, "POST", "/instances", createBody(fmt.Sprintf("node-%d", i), "us-east-1"),
				"Idempotency-Key", fmt.Sprintf("req-%d", i))
			if err != nil || r.status != http.StatusCreated {
				b.Errorf("create: %v %d", err, r.status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkListPage lists one page of a region among 10,000 instances.
func BenchmarkListPage(b *testing.B) {
	s := start(b, cnsim.Config{Instant: true})
	for i := range 10_000 {
		region := []string{"us-east-1", "eu-west-1"}[i%2]
		if r, err := send(s.Client(), s, "POST", "/instances", createBody(fmt.Sprintf("node-%d", i), region)); err != nil || r.status != 201 {
			b.Fatalf("create: %v", err)
		}
	}
	for _, query := range []string{"?region=eu-west-1&page_size=100&page=40", "?status=running&region=eu-west-1&page_size=100&page=40"} {
		b.Run(query, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r, err := send(s.Client(), s, "GET", "/instances"+query, ""); err != nil || r.status != 200 {
					b.Fatalf("list: %v", err)
				}
			}
		})
	}
}
