package pki

import (
	"bytes"
	"errors"
	"testing"
)

// A sealed box opens with its recipient's key and its aad only: another
// key, other aad, a flipped byte, a cut box are each ErrSealed; two seals
// of one secret differ (a fresh key and nonce each time).
func TestSealOpen(t *testing.T) {
	to, _ := NewSealKey()
	other, _ := NewSealKey()
	secret, aad := []byte(`{"ACCESS_KEY_ID":"x"}`), []byte("sedna-node-secret/edge1/default/s3")
	box, err := Seal(to.PublicKey(), secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(to, box, aad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	again, _ := Seal(to.PublicKey(), secret, aad)
	if bytes.Equal(box, again) || bytes.Contains(box, secret) {
		t.Error("two seals are equal, or a box holds its secret in clear")
	}
	flipped := bytes.Clone(box)
	flipped[len(flipped)-1] ^= 1
	for name, c := range map[string]struct{ box, aad []byte }{
		"another key": {box, aad}, "other aad": {box, []byte("sedna-node-secret/edge2/default/s3")},
		"flipped": {flipped, aad}, "cut": {box[:40], aad}, "empty": {nil, aad},
	} {
		key := to
		if name == "another key" {
			key = other
		}
		if _, err := Open(key, c.box, c.aad); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A secret's data becomes environment entries sorted by key; a key that
// is no variable's name is refused.
func TestSecretEnv(t *testing.T) {
	env, err := SecretEnv([]byte(`{"B":"2","A_1":"x=y"}`))
	if err != nil || len(env) != 2 || env[0] != "A_1=x=y" || env[1] != "B=2" {
		t.Fatalf("%v %v", env, err)
	}
	if _, err := SecretEnv([]byte(`{"1BAD":"x"}`)); err == nil {
		t.Error("a key that is no variable's name was taken")
	}
}
