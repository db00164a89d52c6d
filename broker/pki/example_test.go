package pki_test

import (
	"fmt"
	"time"

	"github.com/sedna-go/sedna/broker/pki"
)

// A cloud's CA signs a node's certificate request; the certificate names
// the node the CA chose.
func Example() {
	ca, err := pki.NewCA("sedna cloud CA", time.Hour)
	if err != nil {
		panic(err)
	}
	key, _ := pki.NewKey() // made on the node; it never leaves it
	csr, _ := pki.CSR(key, "")
	_, cert, err := ca.SignNode(csr, "edge1", 90*24*time.Hour)
	if err != nil {
		panic(err)
	}
	fmt.Println(pki.NodeOf(cert), cert.Issuer.CommonName, len(ca.Pin()))
	// Output: edge1 sedna cloud CA 64
}
