package worker

import (
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
// the write then goes to the wrapped core's Write.
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
