package cnsim

import (
	"cmp"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// record is one created instance. It is never changed after it is stored,
// so a handler may read it after releasing the lock; its status is computed
// from the clock on every read, which is why no timer or goroutine exists
// per instance.
type record struct {
	seq       uint64 // creation order, from 1
	id        string
	req       apiclient.CreateInstanceRequest
	createdAt time.Time // exact, for the provision delay
	shownAt   time.Time // created_at as answered: UTC, whole seconds
	readyAt   time.Time // when it leaves pending, unless fate is FateStuckPending
	fate      Fate      // never FateDefault
	ipv4      string    // shown once running
}

func (r *record) status(now time.Time) string {
	if r.fate == FateStuckPending || now.Before(r.readyAt) {
		return apiclient.StatusPending
	}
	if r.fate == FateError {
		return apiclient.StatusError
	}
	return apiclient.StatusRunning
}

// view returns the instance as the API shows it at now.
func (r *record) view(now time.Time) apiclient.Instance {
	created := r.shownAt
	in := apiclient.Instance{
		ID:        r.id,
		Name:      r.req.Name,
		Status:    r.status(now),
		Region:    r.req.Region,
		Plan:      r.req.Plan,
		Image:     r.req.Image,
		CreatedAt: &created,
	}
	if in.Status == apiclient.StatusRunning {
		in.IPv4 = r.ipv4
	}
	return in
}

// instanceID returns the id of the seq-th instance: "inst_" and 8 hex
// digits. The 32-bit mix is a bijection, so ids are unique for the first
// 2^32 instances while looking random; key makes them depend on the seed.
func instanceID(seq uint64, key uint32) string {
	x := uint32(seq) ^ key
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	x *= 0xc2b2ae35
	x ^= x >> 16
	var b [13]byte
	copy(b[:], "inst_")
	hex.Encode(b[5:], []byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	return string(b[:])
}

// instanceIPv4 returns the address of the seq-th instance, in 10.0.0.0/8 and
// unique for the first 2^24-1 instances. Nothing ever connects to it.
func instanceIPv4(seq uint64) string {
	b := make([]byte, 0, 15)
	b = append(b, "10."...)
	b = strconv.AppendUint(b, seq>>16&0xff, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, seq>>8&0xff, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, seq&0xff, 10)
	return string(b)
}

// removeRecord removes r from rs, a slice in creation order, by binary
// search on seq.
func removeRecord(rs []*record, r *record) []*record {
	i, found := slices.BinarySearchFunc(rs, r.seq, func(x *record, seq uint64) int {
		return cmp.Compare(x.seq, seq)
	})
	if !found {
		return rs
	}
	return slices.Delete(rs, i, i+1)
}

// page returns the records of the page-th page (from 1) of size among those
// of rs with the given status (all when status is empty), and how many there
// are in all. Without a status filter it costs only the page; with one, a
// scan of rs.
func page(rs []*record, status string, now time.Time, pageNum, size int) (out []*record, total int) {
	// Compare without multiplying, so that a huge page number cannot
	// overflow.
	if status == "" {
		total = len(rs)
		if pageNum-1 >= (total+size-1)/size {
			return nil, total
		}
		start := (pageNum - 1) * size
		end := min(start+size, total)
		return slices.Clone(rs[start:end]), total
	}
	skip := -1
	if pageNum-1 < (len(rs)+size-1)/size {
		skip = (pageNum - 1) * size
	}
	for _, r := range rs {
		if r.status(now) != status {
			continue
		}
		if skip >= 0 && total >= skip && len(out) < size {
			out = append(out, r)
		}
		total++
	}
	return out, total
}
