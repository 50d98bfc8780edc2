package etcdserver

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToSlog builds the zap logger handed to embedded etcd. etcd logs every
// raft step, compaction and connection at info level; only its errors tell
// an operator something, so anything below error is dropped before it is
// even encoded. Setting closing silences it entirely: while shutting down
// etcd reports each listener it closes as a failed serve, at error level.
func zapToSlog(l *slog.Logger, closing *atomic.Bool) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{l: l.With("component", "etcd"), level: zapcore.ErrorLevel, closing: closing})
}

// slogCore is a zapcore.Core that writes to slog. zap fields are encoded
// into a map so slog handlers (text or JSON) render them natively.
type slogCore struct {
	l       *slog.Logger
	level   zapcore.Level
	closing *atomic.Bool
	fields  []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level && !c.closing.Load() }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{l: c.l, level: c.level, closing: c.closing, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	lvl := slog.LevelError
	if e.Level < zapcore.ErrorLevel {
		lvl = slog.LevelWarn
	}
	// zap entries carry no context; Background is the only honest one.
	c.l.LogAttrs(context.Background(), lvl, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
