package broker

import (
	"context"
	"log/slog"
)

// levelFilter passes only records at or above min to h; mochi logs every
// connection at Info, too much for an edge device's journal. It also drops
// mochi's message-less warnings about connections that closed, which say
// nothing the client's own disconnect does not.
type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" && r.Level < slog.LevelError {
		return nil
	}
	return f.h.Handle(ctx, r)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.h.WithAttrs(a), f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.h.WithGroup(name), f.min}
}
