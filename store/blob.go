package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultChunkSize is the chunk size of PutBlob: small enough for one
// transaction of a small memtable, large enough to keep overhead low.
const DefaultChunkSize = 256 << 10

// ErrCorrupt: a stored chunk does not match its digest.
var ErrCorrupt = errors.New("store: blob chunk corrupt")

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Key       string
	Size      int64
	ChunkSize int
	Chunks    int
	SHA256    [32]byte
	version   uint64
}

// Blob keys: the manifest under blobManifest+key, chunk i of a version
// under blobChunk+key+"\x00"+version+index (big-endian), so the chunks of a
// key sort by index and a new version never mixes with an old one.
const (
	blobManifest = "blob/m/"
	blobChunk    = "blob/c/"
)

func manifestKey(key string) []byte { return []byte(blobManifest + key) }

func chunkPrefix(key string, version uint64) []byte {
	b := []byte(blobChunk + key + "\x00")
	return binary.BigEndian.AppendUint64(b, version)
}

func chunkKey(key string, version uint64, i int) []byte {
	return binary.BigEndian.AppendUint64(chunkPrefix(key, version), uint64(i))
}

// PutBlob stores everything read from r under key, in chunks of chunkSize
// bytes (DefaultChunkSize if 0), each written in its own batch with its
// digest. The blob becomes visible atomically when its manifest is written
// after the last chunk; a previous blob under key stays readable until then
// and is removed after.
func PutBlob(s Store, key string, r io.Reader, chunkSize int) (BlobInfo, error) {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	if key == "" || bytes.IndexByte([]byte(key), 0) >= 0 {
		return BlobInfo{}, fmt.Errorf("store: blob key %q is empty or has NUL", key)
	}
	var vb [8]byte
	if _, err := rand.Read(vb[:]); err != nil {
		return BlobInfo{}, err
	}
	info := BlobInfo{Key: key, ChunkSize: chunkSize, version: binary.BigEndian.Uint64(vb[:])}
	whole := sha256.New()
	buf := make([]byte, chunkSize)
	abort := func(err error) (BlobInfo, error) {
		deleteChunks(s, key, info.version)
		return BlobInfo{}, fmt.Errorf("store: put blob %s: %w", key, err)
	}
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			sum := sha256.Sum256(buf[:n])
			whole.Write(buf[:n])
			val := make([]byte, 0, 32+n)
			val = append(append(val, sum[:]...), buf[:n]...)
			var b Batch
			b.Put(chunkKey(key, info.version, info.Chunks), val)
			if werr := s.Write(&b); werr != nil {
				return abort(werr)
			}
			info.Chunks++
			info.Size += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return abort(err)
		}
	}
	copy(info.SHA256[:], whole.Sum(nil))
	old, oldErr := StatBlob(s, key)
	var b Batch
	b.Put(manifestKey(key), info.marshal())
	if err := s.Write(&b); err != nil {
		return abort(err)
	}
	if oldErr == nil && old.version != info.version {
		deleteChunks(s, key, old.version)
	}
	return info, nil
}

func (i *BlobInfo) marshal() []byte {
	b := make([]byte, 0, 64)
	b = binary.BigEndian.AppendUint64(b, i.version)
	b = binary.BigEndian.AppendUint64(b, uint64(i.Size))
	b = binary.BigEndian.AppendUint32(b, uint32(i.ChunkSize))
	b = binary.BigEndian.AppendUint32(b, uint32(i.Chunks))
	return append(b, i.SHA256[:]...)
}

// StatBlob returns the manifest of the blob under key, or ErrNotFound.
func StatBlob(s Store, key string) (BlobInfo, error) {
	v, err := s.Get(manifestKey(key))
	if err != nil {
		return BlobInfo{}, err
	}
	if len(v) != 56 {
		return BlobInfo{}, fmt.Errorf("%w: manifest of %s is %d bytes", ErrCorrupt, key, len(v))
	}
	info := BlobInfo{
		Key:       key,
		version:   binary.BigEndian.Uint64(v[0:]),
		Size:      int64(binary.BigEndian.Uint64(v[8:])),
		ChunkSize: int(binary.BigEndian.Uint32(v[16:])),
		Chunks:    int(binary.BigEndian.Uint32(v[20:])),
	}
	copy(info.SHA256[:], v[24:])
	return info, nil
}

// ReadChunk returns chunk i of the blob described by info, checked against
// its digest (ErrCorrupt if it does not match).
func ReadChunk(s Store, info BlobInfo, i int) ([]byte, error) {
	if i < 0 || i >= info.Chunks {
		return nil, fmt.Errorf("store: blob %s has no chunk %d of %d", info.Key, i, info.Chunks)
	}
	v, err := s.Get(chunkKey(info.Key, info.version, i))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: blob %s chunk %d missing", ErrCorrupt, info.Key, i)
	}
	if err != nil {
		return nil, err
	}
	if len(v) < 32 {
		return nil, fmt.Errorf("%w: blob %s chunk %d truncated", ErrCorrupt, info.Key, i)
	}
	if sum := sha256.Sum256(v[32:]); !bytes.Equal(sum[:], v[:32]) {
		return nil, fmt.Errorf("%w: blob %s chunk %d digest mismatch", ErrCorrupt, info.Key, i)
	}
	return v[32:], nil
}

// OpenBlob returns a reader of the blob under key that checks every chunk
// and, at the end, the digest of the whole.
func OpenBlob(s Store, key string) (*BlobReader, error) {
	info, err := StatBlob(s, key)
	if err != nil {
		return nil, err
	}
	return &BlobReader{s: s, Info: info, whole: sha256.New()}, nil
}

// BlobReader reads a blob chunk by chunk.
type BlobReader struct {
	Info  BlobInfo
	s     Store
	next  int
	cur   []byte
	whole interface {
		io.Writer
		Sum([]byte) []byte
	}
}

// Read implements io.Reader.
func (r *BlobReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.next == r.Info.Chunks {
			if !bytes.Equal(r.whole.Sum(nil), r.Info.SHA256[:]) {
				return 0, fmt.Errorf("%w: blob %s digest mismatch", ErrCorrupt, r.Info.Key)
			}
			return 0, io.EOF
		}
		c, err := ReadChunk(r.s, r.Info, r.next)
		if err != nil {
			return 0, err
		}
		r.whole.Write(c)
		r.cur = c
		r.next++
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// DeleteBlob removes the blob under key; a missing blob is not an error.
func DeleteBlob(s Store, key string) error {
	info, err := StatBlob(s, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var b Batch
	b.Delete(manifestKey(key))
	if err := s.Write(&b); err != nil {
		return err
	}
	return deleteChunks(s, key, info.version)
}

func deleteChunks(s Store, key string, version uint64) error {
	var keys [][]byte
	err := s.Scan(chunkPrefix(key, version), nil, func(k, _ []byte) error {
		keys = append(keys, append([]byte{}, k...))
		return nil
	})
	if err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 256)
		var b Batch
		for _, k := range keys[:n] {
			b.Delete(k)
		}
		if err := s.Write(&b); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
