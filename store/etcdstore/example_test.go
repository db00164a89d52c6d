package etcdstore_test

import (
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/store/etcdstore"
)

// A store in a namespace of an etcd cluster: every part of the cloud
// manager gets a view of it, as with Badger.
func Example() {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	s, err := etcdstore.Open(etcdstore.Options{Client: c, Prefix: "example/cloud/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	specs := store.Sub(s, "specs/")
	var b store.Batch
	b.Put([]byte("default/mnist"), []byte("spec"))
	if err := specs.Write(&b); err != nil {
		fmt.Println(err)
		return
	}
	v, err := specs.Get([]byte("default/mnist"))
	fmt.Println(string(v), err, s.Mode())
	// Output: spec <nil> sync
}
