package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sedna-go/sedna/broker/metrics"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// DeadLetter is a message that was refused (malformed, unknown schema
// version, too large, not allowed) or that the far side refused too many
// times. It is kept, with the reason, so nothing is silently lost.
type DeadLetter struct {
	Time      time.Time `json:"time"`
	Component string    `json:"component"`
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail"`
	Topic     string    `json:"topic,omitempty"`
	Client    string    `json:"client,omitempty"`
	Message   string    `json:"message,omitempty"`
	Payload   []byte    `json:"payload,omitempty"`
	// Blob names where a payload too large for one record is kept.
	Blob string `json:"blob,omitempty"`
}

// inlinePayload is the largest payload kept inside a dead-letter record;
// larger ones go to a chunked blob beside it.
const inlinePayload = 64 << 10

// DeadLetters is the dead-letter store of a process. Adding a dead letter
// also reports it (as a topics.ErrorEvent), logs it and counts it. The store
// keeps the newest MaxEntries; older ones are deleted.
type DeadLetters struct {
	s       store.Store
	blobs   store.Store
	report  func(topics.ErrorEvent)
	metrics *metrics.Set
	log     *slog.Logger
	max     int

	mu    sync.Mutex
	count int
}

// DefaultMaxDeadLetters is how many dead letters are kept by default.
const DefaultMaxDeadLetters = 10000

// OpenDeadLetters opens the dead-letter store in s (a Sub view of its own).
// report, if set, publishes the error event of each dead letter.
func OpenDeadLetters(s store.Store, max int, report func(topics.ErrorEvent), m *metrics.Set, log *slog.Logger) (*DeadLetters, error) {
	if max <= 0 {
		max = DefaultMaxDeadLetters
	}
	if log == nil {
		log = slog.Default()
	}
	d := &DeadLetters{s: s, blobs: store.Sub(s, "b/"), report: report, metrics: m, log: log, max: max}
	err := s.Scan([]byte(recPrefix), nil, func(_, _ []byte) error { d.count++; return nil })
	if err != nil {
		return nil, fmt.Errorf("broker: dead letters: %w", err)
	}
	return d, nil
}

// Add keeps a dead letter and reports it. Errors writing it are logged:
// a dead letter must never stop the stream it came from.
func (d *DeadLetters) Add(dl DeadLetter) {
	if dl.Time.IsZero() {
		dl.Time = time.Now()
	}
	d.log.Warn("dead letter", "component", dl.Component, "reason", dl.Reason, "detail", dl.Detail,
		"topic", dl.Topic, "client", dl.Client, "bytes", len(dl.Payload))
	if d.metrics != nil {
		d.metrics.DeadLetters.WithLabelValues(dl.Component, dl.Reason).Inc()
	}
	key := binary.BigEndian.AppendUint64(nil, uint64(dl.Time.UnixNano()))
	var r [4]byte
	_, _ = rand.Read(r[:])
	key = append(key, r[:]...)
	size := len(dl.Payload)
	rec := dl
	if len(dl.Payload) > inlinePayload {
		rec.Blob = fmt.Sprintf("%x", key)
		if _, err := store.PutBlob(d.blobs, rec.Blob, bytes.NewReader(dl.Payload), 0); err != nil {
			d.log.Error("dead letter payload not stored", "error", err)
			rec.Blob = ""
		}
		rec.Payload = nil
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return
	}
	var b store.Batch
	b.Put(append([]byte(recPrefix), key...), v)
	d.mu.Lock()
	if d.count >= d.max {
		_ = d.s.Scan([]byte(recPrefix), nil, func(k, v []byte) error {
			b.Delete(append([]byte{}, k...))
			var old DeadLetter
			if json.Unmarshal(v, &old) == nil && old.Blob != "" {
				_ = store.DeleteBlob(d.blobs, old.Blob)
			}
			if d.count--; d.count < d.max {
				return store.ErrStop
			}
			return nil
		})
	}
	if err := d.s.Write(&b); err != nil {
		d.log.Error("dead letter not stored", "error", err)
	} else {
		d.count++
	}
	d.mu.Unlock()
	// Reported once stored, so whoever reacts to the event finds it.
	if d.report != nil {
		d.report(topics.ErrorEvent{Component: dl.Component, Reason: dl.Reason, Detail: dl.Detail,
			Topic: dl.Topic, Client: dl.Client, Message: dl.Message, Size: size})
	}
}

// recPrefix holds the records; large payloads are blobs under "b/".
const recPrefix = "r/"

// List returns up to limit dead letters, oldest first, with their payloads.
func (d *DeadLetters) List(limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := d.s.Scan([]byte(recPrefix), nil, func(_, v []byte) error {
		var dl DeadLetter
		if err := json.Unmarshal(v, &dl); err == nil {
			out = append(out, dl)
		}
		if limit > 0 && len(out) >= limit {
			return store.ErrStop
		}
		return nil
	})
	for i := range out {
		if out[i].Blob == "" {
			continue
		}
		r, berr := store.OpenBlob(d.blobs, out[i].Blob)
		if berr == nil {
			out[i].Payload, berr = io.ReadAll(r)
		}
		if berr != nil && err == nil {
			err = fmt.Errorf("broker: dead letter payload %s: %w", out[i].Blob, berr)
		}
	}
	return out, err
}

// Len returns how many dead letters are kept.
func (d *DeadLetters) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}
