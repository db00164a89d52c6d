package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
)

// maxAbove bounds the seqs a Window remembers above its watermark. A gap
// that stays open that long (a sender that skipped seqs without saying so
// in a frame's Floor) is closed with a warning.
const maxAbove = 1 << 16

// Window remembers which seqs of one (node, stream, epoch) were seen: all
// seqs up to Watermark, and the seqs above it in a sorted set, because
// deliveries can come out of order (a late lower seq must not be dropped).
type Window struct {
	Watermark uint64
	Above     []uint64
}

// Seen reports whether seq was seen.
func (w *Window) Seen(seq uint64) bool {
	if seq <= w.Watermark {
		return true
	}
	i := sort.Search(len(w.Above), func(i int) bool { return w.Above[i] >= seq })
	return i < len(w.Above) && w.Above[i] == seq
}

// Add records seq and reports whether it was new.
func (w *Window) Add(seq uint64) bool {
	if seq <= w.Watermark {
		return false
	}
	i := sort.Search(len(w.Above), func(i int) bool { return w.Above[i] >= seq })
	if i < len(w.Above) && w.Above[i] == seq {
		return false
	}
	w.Above = append(w.Above, 0)
	copy(w.Above[i+1:], w.Above[i:])
	w.Above[i] = seq
	w.compact()
	return true
}

// Raise records that every seq <= floor is settled (see topics.Frame.Floor)
// and returns the gaps it closed: seqs that were never seen and never will be.
func (w *Window) Raise(floor uint64) []topics.SeqRange {
	if floor <= w.Watermark {
		return nil
	}
	var gaps []topics.SeqRange
	next := w.Watermark + 1
	i := 0
	for ; i < len(w.Above) && w.Above[i] <= floor; i++ {
		if w.Above[i] > next {
			gaps = append(gaps, topics.SeqRange{From: next, To: w.Above[i] - 1})
		}
		next = w.Above[i] + 1
	}
	if next <= floor {
		gaps = append(gaps, topics.SeqRange{From: next, To: floor})
	}
	w.Watermark = floor
	w.Above = append(w.Above[:0], w.Above[i:]...)
	w.compact()
	return gaps
}

// AddRange records every seq of r.
func (w *Window) AddRange(r topics.SeqRange) {
	if r.From <= w.Watermark+1 {
		w.Raise(r.To)
		return
	}
	for s := r.From; s <= r.To; s++ {
		w.Add(s)
	}
}

func (w *Window) compact() {
	n := 0
	for n < len(w.Above) && w.Above[n] == w.Watermark+1 {
		w.Watermark++
		n++
	}
	if n > 0 {
		w.Above = append(w.Above[:0], w.Above[n:]...)
	}
	if len(w.Above) > maxAbove {
		// Close the lowest gap: a message in it arriving later would be
		// taken for a duplicate, so say so.
		slog.Warn("dedup: closing a gap that stayed open too long", "from", w.Watermark+1, "to", w.Above[0]-1)
		w.Watermark = w.Above[0] - 1
		w.compact()
	}
}

func (w *Window) clone() Window {
	return Window{Watermark: w.Watermark, Above: append([]uint64(nil), w.Above...)}
}

func (w *Window) marshal() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16+2*len(w.Above)), w.Watermark)
	prev := w.Watermark
	for _, s := range w.Above {
		b = binary.AppendUvarint(b, s-prev)
		prev = s
	}
	return b
}

func unmarshalWindow(b []byte) (Window, error) {
	if len(b) < 8 {
		return Window{}, errors.New("dedup: window record too short")
	}
	w := Window{Watermark: binary.BigEndian.Uint64(b)}
	prev := w.Watermark
	for b = b[8:]; len(b) > 0; {
		d, n := binary.Uvarint(b)
		if n <= 0 || d == 0 {
			return Window{}, errors.New("dedup: bad window record")
		}
		prev += d
		w.Above = append(w.Above, prev)
		b = b[n:]
	}
	return w, nil
}

// Dedup keeps a Window per (node, stream, epoch), in memory and in a store.
// A caller takes the window of a sender with Lock, checks and adds seqs,
// puts the window's record in the same store write as the messages it
// accepts (see Queue.Append's extra batch), and calls Done with the result
// of that write, which keeps or rolls back the additions.
type Dedup struct {
	s      store.Store // the base store
	prefix string      // of the windows in s

	mu   sync.Mutex
	wins map[dedupKey]*lockedWindow
}

type dedupKey struct {
	node   string
	stream topics.Stream
	epoch  uint64
}

type lockedWindow struct {
	mu   sync.Mutex
	key  []byte // in the base store
	w    Window
	prev Window
}

// NewDedup keeps windows in base under prefix. DedupTxn.Put adds records
// with keys of base, for a batch written to base (directly, or as the
// extra batch of a Queue whose view was made from base).
func NewDedup(base store.Store, prefix string) *Dedup {
	return &Dedup{s: base, prefix: prefix, wins: map[dedupKey]*lockedWindow{}}
}

func dedupStoreKey(k dedupKey) []byte {
	b := []byte(k.node + "/" + string(k.stream) + "/")
	return binary.BigEndian.AppendUint64(b, k.epoch)
}

// Lock returns the locked window of a sender, loaded from the store the
// first time. The caller must call Done.
func (d *Dedup) Lock(node string, stream topics.Stream, epoch uint64) (*DedupTxn, error) {
	k := dedupKey{node, stream, epoch}
	d.mu.Lock()
	lw, ok := d.wins[k]
	if !ok {
		lw = &lockedWindow{key: append([]byte(d.prefix), dedupStoreKey(k)...)}
		d.wins[k] = lw
	}
	d.mu.Unlock()
	lw.mu.Lock()
	if !ok {
		v, err := d.s.Get(lw.key)
		switch {
		case err == nil:
			w, derr := unmarshalWindow(v)
			if derr != nil {
				lw.mu.Unlock()
				return nil, fmt.Errorf("dedup %s/%s/%x: %w", node, stream, epoch, derr)
			}
			lw.w = w
		case !errors.Is(err, store.ErrNotFound):
			d.mu.Lock()
			delete(d.wins, k)
			d.mu.Unlock()
			lw.mu.Unlock()
			return nil, fmt.Errorf("dedup %s/%s/%x: %w", node, stream, epoch, err)
		}
	}
	lw.prev = lw.w.clone()
	return &DedupTxn{lw: lw}, nil
}

// DedupTxn is a locked window being updated.
type DedupTxn struct {
	lw      *lockedWindow
	changed bool
}

// Add records seq and reports whether it is new (false: a duplicate).
func (t *DedupTxn) Add(seq uint64) bool {
	ok := t.lw.w.Add(seq)
	t.changed = t.changed || ok
	return ok
}

// Seen reports whether seq was seen, without recording it.
func (t *DedupTxn) Seen(seq uint64) bool { return t.lw.w.Seen(seq) }

// Raise settles every seq <= floor and returns the gaps it closed.
func (t *DedupTxn) Raise(floor uint64) []topics.SeqRange {
	if floor <= t.lw.w.Watermark {
		return nil
	}
	t.changed = true
	return t.lw.w.Raise(floor)
}

// Skip settles the seqs of skipped ranges (see topics.Frame.Skipped).
func (t *DedupTxn) Skip(skipped []topics.SeqRange) {
	for _, r := range skipped {
		t.lw.w.AddRange(r)
		t.changed = true
	}
}

// Watermark is the highest seq below which every seq was seen.
func (t *DedupTxn) Watermark() uint64 { return t.lw.w.Watermark }

// Put adds the window's record to b, if it changed. The key is one of the
// Dedup's base store.
func (t *DedupTxn) Put(b *store.Batch) {
	if t.changed {
		b.Put(t.lw.key, t.lw.w.marshal())
	}
}

// Done unlocks the window, keeping the additions if err is nil and
// rolling them back otherwise.
func (t *DedupTxn) Done(err error) {
	if err != nil {
		t.lw.w = t.lw.prev
	}
	t.lw.prev = Window{}
	t.lw.mu.Unlock()
}
