package worker_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/worker"
)

// takeoverAPI is the worker's API client, except that right before the
// delete of a failed instance the replica "freezes" past its lease (its
// clock jumps) and another delivery takes the job over (writes the record
// as its own), as happens to a replica stopped by a long pause.
type takeoverAPI struct {
	worker.API
	takeover  func()
	deleteErr atomic.Pointer[error]
}

func (a *takeoverAPI) DeleteInstance(ctx context.Context, id string) error {
	a.takeover()
	err := a.API.DeleteInstance(ctx, id)
	a.deleteErr.Store(&err)
	return err
}

// TestDeleteNotSentWithoutLease: a replica that lost its lease between
// deciding that a job failed and deleting its instance sends no delete,
// publishes no event and leaves the job to the delivery that took it over;
// it could otherwise delete an instance that delivery has since seen
// running and reported completed.
func TestDeleteNotSentWithoutLease(t *testing.T) {
	e := newEnv(t, func(_ *worker.Config, sc *cnsim.Config, _ *apiclient.Config) { sc.Faults.EndInError = 1 })
	e.stop() // the env's own worker; this test runs one with a clock it moves

	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	wc := worker.Config{}
	fastConfig(&wc, &cnsim.Config{}, &apiclient.Config{})
	wc.JetStream, wc.Now = e.js, now
	wc.Logger = zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	const id = "delete-after-takeover"
	api := &takeoverAPI{API: e.api}
	api.takeover = func() {
		kv, err := e.js.KeyValue(context.Background(), "provision_jobs")
		if err != nil {
			t.Errorf("bucket: %v", err)
			return
		}
		entry, err := kv.Get(context.Background(), id)
		if err != nil {
			t.Errorf("record: %v", err)
			return
		}
		var rec worker.Record
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			t.Errorf("record: %v", err)
			return
		}
		offset.Add(int64(2 * wc.AckWait)) // frozen past the lease
		rec.Owner, rec.LeaseUntil = "other-replica/1", now().Add(time.Hour)
		b, _ := json.Marshal(&rec)
		if _, err := kv.Update(context.Background(), id, b, entry.Revision()); err != nil {
			t.Errorf("take the record over: %v", err)
		}
	}
	wc.API = api
	e.startWorker(wc)

	r := request(id)
	e.publishRequest(r)
	deadline := time.Now().Add(20 * time.Second)
	for api.deleteErr.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the worker never got to delete the failed instance")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := *api.deleteErr.Load(); err == nil {
		t.Error("DeleteInstance succeeded for a replica whose lease another delivery had taken")
	}
	time.Sleep(500 * time.Millisecond) // what the worker does next, if anything
	if n := e.sim.Deletes(); n != 0 {
		t.Errorf("the simulator got %d delete(s); want none from a replica without the lease", n)
	}
	insts := e.sim.Instances()
	if len(insts) != 1 {
		t.Fatalf("%d instances; want the one created", len(insts))
	}
	for _, ev := range e.events() {
		if ev.ev.RequestID == id && ev.ev.Kind.Terminal() {
			t.Errorf("a terminal %s event was published by a replica without the lease", ev.ev.Kind)
		}
	}
}
