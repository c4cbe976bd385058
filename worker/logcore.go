package worker

import (
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// fieldsCore is a zapcore.Core that keeps the fields given to With as they
// are and hands them to the core it wraps with every entry, where zap's own
// cores encode them at once into a copy of their encoder. A job's logger
// lives as long as the job, minutes for thousands of jobs at once, and
// writes a few lines: encoding its fields with each line costs a
// microsecond, while a copied encoder keeps a buffer of about a kilobyte for
// the job's whole life.
//
// Whether an entry is written is still the wrapped core's decision (Check);
// the write then goes to the wrapped core's Write, where zap's own cores
// encode every field, a job's jobLogFields included, as the entry is written.
type fieldsCore struct {
	zapcore.Core
	fields []zapcore.Field
}

// withFieldsCore returns log with its core wrapped in a fieldsCore.
func withFieldsCore(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return &fieldsCore{Core: c} }))
}

func (c *fieldsCore) With(fields []zapcore.Field) zapcore.Core {
	return &fieldsCore{Core: c.Core, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *fieldsCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Core.Check(ent, nil) == nil {
		return ce
	}
	return ce.AddCore(ent, c)
}

func (c *fieldsCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if len(c.fields) == 0 {
		return c.Core.Write(ent, fields)
	}
	return c.Core.Write(ent, append(c.fields[:len(c.fields):len(c.fields)], fields...))
}

// jobLogFields are the fields of a job's log lines: the delivery's, then the
// request's and the instance's ids once the job knows them. A job's logger
// is made once, with these inline (zap.Inline), and they are read at each
// line as it is written (see fieldsCore): no logger is copied as the job
// learns its ids (each copy cost a logger, a core and a longer list of
// fields, about a kilobyte per job held for the job's life), and the lease
// keeper, which logs for jobs from its own goroutine, never reads a logger
// that the job is replacing. A core that keeps fields to encode later, such
// as zaptest/observer's, sees the ids as they are when it encodes them.
type jobLogFields struct {
	streamSeq, delivery uint64
	requestID           atomic.Pointer[string]
	instanceID          atomic.Pointer[string]
}

func (f *jobLogFields) setRequestID(id string)  { f.requestID.Store(&id) }
func (f *jobLogFields) setInstanceID(id string) { f.instanceID.Store(&id) }

// MarshalLogObject writes the fields known so far, in a fixed order.
func (f *jobLogFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddUint64("stream_seq", f.streamSeq)
	enc.AddUint64("delivery", f.delivery)
	if id := f.requestID.Load(); id != nil {
		enc.AddString("request_id", *id)
	}
	if id := f.instanceID.Load(); id != nil {
		enc.AddString("instance_id", *id)
	}
	return nil
}
