package paradigm

import "fmt"

// Chunks cuts data into pieces of at most size bytes (at least one piece),
// for a payload larger than a message of the bus: a model, an update, a
// work order.
func Chunks(data []byte, size int) [][]byte {
	if len(data) == 0 {
		return [][]byte{nil}
	}
	var out [][]byte
	for len(data) > 0 {
		n := min(size, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// Assembly puts the pieces of one payload back together, in any order, a
// piece sent twice kept once.
type Assembly struct {
	// Max bounds the whole (0: 1 GiB), so a sender cannot make the
	// receiver hold more than the payload's size.
	Max int
	// MinPiece is the least size of a piece but the last (0: 1): a count
	// of pieces more than Max/MinPiece+1 is refused at once.
	MinPiece int
	parts    [][]byte
	have     int
	size     int
}

// Add keeps piece i of n and reports whether the whole has arrived.
// Pieces that do not agree with the first one's count, or that would make
// the whole larger than Max, are an error.
func (a *Assembly) Add(i, n int, data []byte) (bool, error) {
	limit := a.Max
	if limit <= 0 {
		limit = 1 << 30
	}
	if n < 1 || n > 1<<16 || i < 0 || i >= n || n > limit/max(1, a.MinPiece)+1 {
		return false, fmt.Errorf("piece %d of %d", i, n)
	}
	if a.parts == nil {
		a.parts = make([][]byte, n)
	}
	if len(a.parts) != n {
		return false, fmt.Errorf("piece %d of %d, earlier pieces said %d", i, n, len(a.parts))
	}
	if a.parts[i] == nil {
		if a.size+len(data) > limit {
			return false, fmt.Errorf("pieces of more than %d bytes", limit)
		}
		a.parts[i] = append([]byte{}, data...)
		a.have++
		a.size += len(data)
	}
	return a.have == n, nil
}

// Bytes is the whole, once Add said it arrived.
func (a *Assembly) Bytes() []byte {
	out := make([]byte, 0, a.size)
	for _, p := range a.parts {
		out = append(out, p...)
	}
	return out
}
