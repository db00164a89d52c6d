package incremental

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/store"
)

// HardExample is a sample the deployed model found hard (its miner said
// so): what it was given, which model version judged it, and when.
type HardExample struct {
	Seq uint64 `msgpack:"seq"` // its place in the node's pool, given by Add
	// ID is the device's name for the sample, as its request gave it.
	ID string `msgpack:"id,omitempty"`
	// Shape, DType and Data are the sample as the device sent it (an
	// 8-bit image stays 8-bit: every byte counts on the uplink).
	Shape []int   `msgpack:"shape,omitempty"`
	DType string  `msgpack:"dtype,omitempty"`
	Data  []byte  `msgpack:"data"`
	Model uint64  `msgpack:"model"`
	Score float64 `msgpack:"score,omitempty"` // the miner's, where it gives one
	At    int64   `msgpack:"at"`              // the node's clock, unix nanoseconds
	// Attr is the sample's task attribute, as its request gave it
	// (lifelong jobs).
	Attr string `msgpack:"attr,omitempty"`
}

// PoolLimits bound a node's hard examples.
type PoolLimits struct {
	MaxExamples int   // default 10,000
	MaxBytes    int64 // of their records; default 64 MiB
}

// PoolStats are a pool's numbers since it was created.
type PoolStats struct {
	Kept    int    `msgpack:"kept"`
	Bytes   int64  `msgpack:"bytes"`
	Added   int64  `msgpack:"added"`
	Dropped int64  `msgpack:"dropped"` // the oldest, to make room
	Removed int64  `msgpack:"removed"` // sent up, or no longer needed
	Next    uint64 `msgpack:"next"`
}

// Pool keeps a node's hard examples in its store until they are sent up:
// bounded by count and bytes, the oldest dropped (and counted) to make
// room for a new one. It survives a restart. Safe for concurrent use.
type Pool struct {
	st    store.Store
	lim   PoolLimits
	mu    sync.Mutex
	stats PoolStats
	sizes map[uint64]int // record bytes of each kept example
	order []uint64       // kept examples, oldest first
}

var statsKey = []byte("m/stats")

func exampleKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("e/"), seq) }

// OpenPool opens the pool kept in st (a view of the node's store of the
// job's own).
func OpenPool(st store.Store, lim PoolLimits) (*Pool, error) {
	if lim.MaxExamples <= 0 {
		lim.MaxExamples = 10_000
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 64 << 20
	}
	p := &Pool{st: st, lim: lim, sizes: map[uint64]int{}}
	v, err := st.Get(statsKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("incremental: hard examples: %w", err)
	default:
		if err := msgpack.Unmarshal(v, &p.stats); err != nil {
			return nil, fmt.Errorf("incremental: hard examples: their numbers: %w", err)
		}
	}
	p.stats.Kept, p.stats.Bytes = 0, 0
	err = st.Scan([]byte("e/"), nil, func(k, v []byte) error {
		if len(k) != 10 {
			return fmt.Errorf("incremental: hard examples: a key of %d bytes", len(k))
		}
		seq := binary.BigEndian.Uint64(k[2:])
		p.order = append(p.order, seq)
		p.sizes[seq] = len(v)
		p.stats.Kept++
		p.stats.Bytes += int64(len(v))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Add keeps e (its Seq given here, returned), dropping the oldest
// examples that no longer fit. An example larger than the whole pool is
// refused.
func (p *Pool) Add(e HardExample) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.Seq = p.stats.Next + 1
	rec, err := msgpack.Marshal(&e)
	if err != nil {
		return 0, err
	}
	if int64(len(rec)) > p.lim.MaxBytes {
		return 0, fmt.Errorf("incremental: a hard example of %d bytes is over the pool's %d", len(rec), p.lim.MaxBytes)
	}
	var b store.Batch
	drop := 0
	kept, bytes := p.stats.Kept, p.stats.Bytes
	for kept+1 > p.lim.MaxExamples || bytes+int64(len(rec)) > p.lim.MaxBytes {
		old := p.order[drop]
		b.Delete(exampleKey(old))
		kept--
		bytes -= int64(p.sizes[old])
		drop++
	}
	b.Put(exampleKey(e.Seq), rec)
	next := p.stats
	next.Kept, next.Bytes, next.Next = kept+1, bytes+int64(len(rec)), e.Seq
	next.Added++
	next.Dropped += int64(drop)
	sv, err := msgpack.Marshal(&next)
	if err != nil {
		return 0, err
	}
	b.Put(statsKey, sv)
	if err := p.st.Write(&b); err != nil {
		return 0, fmt.Errorf("incremental: hard example not kept: %w", err)
	}
	for _, old := range p.order[:drop] {
		delete(p.sizes, old)
	}
	p.order = append(p.order[drop:], e.Seq)
	p.sizes[e.Seq] = len(rec)
	p.stats = next
	return e.Seq, nil
}

// Oldest returns up to n kept examples, oldest first.
func (p *Pool) Oldest(n int) ([]HardExample, error) {
	var out []HardExample
	if n <= 0 {
		return out, nil
	}
	err := p.st.Scan([]byte("e/"), nil, func(_, v []byte) error {
		var e HardExample
		if err := msgpack.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("incremental: a hard example: %w", err)
		}
		if out = append(out, e); len(out) == n {
			return store.ErrStop
		}
		return nil
	})
	return out, err
}

// Remove forgets examples (sent up); one not kept is skipped.
func (p *Pool) Remove(seqs ...uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b store.Batch
	next := p.stats
	gone := map[uint64]bool{}
	for _, seq := range seqs {
		size, ok := p.sizes[seq]
		if !ok || gone[seq] {
			continue
		}
		gone[seq] = true
		b.Delete(exampleKey(seq))
		next.Kept--
		next.Bytes -= int64(size)
		next.Removed++
	}
	if len(gone) == 0 {
		return nil
	}
	sv, err := msgpack.Marshal(&next)
	if err != nil {
		return err
	}
	b.Put(statsKey, sv)
	if err := p.st.Write(&b); err != nil {
		return fmt.Errorf("incremental: hard examples not removed: %w", err)
	}
	kept := p.order[:0]
	for _, seq := range p.order {
		if gone[seq] {
			delete(p.sizes, seq)
		} else {
			kept = append(kept, seq)
		}
	}
	p.order = kept
	p.stats = next
	return nil
}

// Stats returns the pool's numbers.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}
