package etcdstore_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/internal/testcluster"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/store/etcdstore"
	"github.com/sedna-go/sedna/store/storetest"
)

// endpointEnv passes the package's etcd to the child processes of the
// conformance suite's kill test, which open the same namespace.
const endpointEnv = "ETCDSTORE_TEST_ENDPOINT"

var endpoint string

func TestMain(m *testing.M) {
	endpoint = os.Getenv(endpointEnv)
	if endpoint != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "etcdstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e, err := testcluster.StartEtcd(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	endpoint = e.Endpoint
	os.Setenv(endpointEnv, endpoint)
	code := m.Run()
	_ = e.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func client(t testing.TB, ep string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestConformance holds the etcd store to what every store promises
// (store/storetest), each test in a namespace of its own on one etcd.
func TestConformance(t *testing.T) {
	c := client(t, endpoint)
	storetest.Run(t, func(t *testing.T, dir string) store.Store {
		s, err := etcdstore.Open(etcdstore.Options{Client: c, Prefix: "conformance" + dir + "/"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func open(t *testing.T, o etcdstore.Options) *etcdstore.Store {
	t.Helper()
	if o.Client == nil {
		o.Client = client(t, endpoint)
	}
	if o.Prefix == "" {
		o.Prefix = t.Name() + "/"
	}
	s, err := etcdstore.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func write(s store.Store, kv ...string) error {
	var b store.Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Put([]byte(kv[i]), []byte(kv[i+1]))
	}
	return s.Write(&b)
}

// TestFencedWriteWritesNothing: a Write whose fence fails (the key a
// replica's ownership rests on was deleted) returns ErrFenced and writes
// none of its keys; while the fence holds, Writes land.
func TestFencedWriteWritesNothing(t *testing.T) {
	c := client(t, endpoint)
	owner := t.Name() + "-owner"
	put, err := c.Put(t.Context(), owner, "replica-1")
	if err != nil {
		t.Fatal(err)
	}
	rev := put.Header.Revision
	s := open(t, etcdstore.Options{Client: c, Fence: func() []clientv3.Cmp {
		return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(owner), "=", rev)}
	}})
	if err := write(s, "a", "1"); err != nil {
		t.Fatalf("a write under a fence that holds: %v", err)
	}
	if _, err := c.Put(t.Context(), owner, "replica-2"); err != nil {
		t.Fatal(err)
	}
	if err := write(s, "a", "2", "b", "2"); !errors.Is(err, etcdstore.ErrFenced) {
		t.Fatalf("a write under a failed fence = %v, want ErrFenced", err)
	}
	if v, err := s.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("a = %q, %v after a fenced write; want 1", v, err)
	}
	if _, err := s.Get([]byte("b")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b after a fenced write: %v, want ErrNotFound", err)
	}
}

// TestRepeatedKeysLastWins: a batch that writes one key several times
// (which etcd refuses in one transaction) leaves the last write, as
// Badger does.
func TestRepeatedKeysLastWins(t *testing.T) {
	s := open(t, etcdstore.Options{})
	var b store.Batch
	b.Put([]byte("k"), []byte("1"))
	b.Put([]byte("gone"), []byte("x"))
	b.Put([]byte("k"), []byte("2"))
	b.Delete([]byte("gone"))
	b.Delete([]byte("back"))
	b.Put([]byte("back"), []byte("3"))
	if err := s.Write(&b); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"k": "2", "back": "3"} {
		if v, err := s.Get([]byte(k)); err != nil || string(v) != want {
			t.Fatalf("%s = %q, %v; want %q", k, v, err, want)
		}
	}
	if _, err := s.Get([]byte("gone")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("gone: %v, want ErrNotFound", err)
	}
}

// TestTooLargeWritesNothing: a batch of more keys than the cluster takes
// in one transaction is refused with store.ErrTooLarge, by the store when
// its MaxTxnOps says so and by etcd when the option overstates the
// cluster's limit (128, etcd's default), and nothing of it is written; a
// caller grouping records by BatchBudget stays under the limit.
func TestTooLargeWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  int
	}{{"refused by the store", 0}, {"refused by etcd", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, etcdstore.Options{MaxTxnOps: tc.ops})
			var b store.Batch
			for i := range 200 {
				b.Put(fmt.Appendf(nil, "k%03d", i), []byte("v"))
			}
			err := s.Write(&b)
			if !errors.Is(err, store.ErrTooLarge) {
				t.Fatalf("a write of 200 keys = %v, want ErrTooLarge", err)
			}
			if _, err := s.Get([]byte("k000")); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("k000 after a refused write: %v", err)
			}
		})
	}
	s := open(t, etcdstore.Options{})
	budget := store.BatchBudget(s, 1<<20)
	var b store.Batch
	for i := 0; b.Size()+store.RecordOverhead*(b.Len()+1) <= budget; i++ {
		b.Put(fmt.Appendf(nil, "queue/%020d", i), []byte("a small message of forty bytes, or so.."))
	}
	if err := s.Write(&b); err != nil {
		t.Fatalf("a batch of %d records within the store's budget (%d bytes): %v", b.Len(), budget, err)
	}
}

// TestFullQuotaIsErrFull: when etcd's space quota is exhausted a Write
// returns store.ErrFull and writes nothing, and every write that returned
// nil before stays readable (etcd applies the transaction that crosses the
// quota and still answers "space exceeded" for it: that Write returns nil).
func TestFullQuotaIsErrFull(t *testing.T) {
	e, err := testcluster.StartEtcd(t.TempDir(), "--quota-backend-bytes", fmt.Sprint(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	s := open(t, etcdstore.Options{Client: client(t, e.Endpoint)})
	val := strings.Repeat("x", 512<<10)
	written := 0
	for ; written < 100; written++ {
		err = write(s, fmt.Sprintf("big/%03d", written), val)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("after %d writes of 512 KiB into an 8 MiB quota: %v, want ErrFull", written, err)
	}
	if _, err := s.Get(fmt.Appendf(nil, "big/%03d", written)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused write's key: %v, want ErrNotFound", err)
	}
	for i := range written {
		if v, err := s.Get(fmt.Appendf(nil, "big/%03d", i)); err != nil || len(v) != len(val) {
			t.Fatalf("write %d, after the quota filled: %d bytes, %v", i, len(v), err)
		}
	}
	t.Logf("ErrFull after %d writes of 512 KiB: %v", written, err)
}
