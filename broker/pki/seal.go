package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
)

// Sealing: a secret is sealed for one recipient's X25519 key (a node's,
// made when it joins; the cloud's, for the CLI that sends it a secret),
// so that only that recipient opens it, whoever carries the bytes. A
// sealed box is: 1 (its version), the sender's ephemeral X25519 public key
// (32 bytes), a nonce (12), then AES-256-GCM of the secret under a key
// derived from the X25519 shared secret by HKDF-SHA-256 (info
// "sedna-seal", salt the two public keys). aad binds it to its use (a
// secret's name, a node's): opened with other aad, it fails.

const sealVersion = 1

// ErrSealed is the error of a box that does not open: another
// recipient's, tampered with, or bound to other aad.
var ErrSealed = errors.New("pki: a sealed secret that does not open here")

// NewSealKey makes an X25519 key to receive sealed secrets with.
func NewSealKey() (*ecdh.PrivateKey, error) { return ecdh.X25519().GenerateKey(rand.Reader) }

// ParseSealKey reads an X25519 private key's 32 bytes.
func ParseSealKey(b []byte) (*ecdh.PrivateKey, error) { return ecdh.X25519().NewPrivateKey(b) }

// ParseSealPublic reads an X25519 public key's 32 bytes.
func ParseSealPublic(b []byte) (*ecdh.PublicKey, error) { return ecdh.X25519().NewPublicKey(b) }

func sealKey(shared, ephemeral, recipient []byte) ([]byte, error) {
	salt := append(append([]byte{}, ephemeral...), recipient...)
	return hkdf.Key(sha256.New, shared, salt, "sedna-seal", 32)
}

// Seal seals secret for to, bound to aad.
func Seal(to *ecdh.PublicKey, secret, aad []byte) ([]byte, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(to)
	if err != nil {
		return nil, err
	}
	key, err := sealKey(shared, eph.PublicKey().Bytes(), to.Bytes())
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := append([]byte{sealVersion}, eph.PublicKey().Bytes()...)
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return gcm.Seal(out, nonce, secret, aad), nil
}

// Open opens a box Seal sealed for key's public key with the same aad.
func Open(key *ecdh.PrivateKey, box, aad []byte) ([]byte, error) {
	if len(box) < 1+32+12+16 || box[0] != sealVersion {
		return nil, fmt.Errorf("%w (not a sealed box of version %d)", ErrSealed, sealVersion)
	}
	ephBytes, nonce, ct := box[1:33], box[33:45], box[45:]
	eph, err := ecdh.X25519().NewPublicKey(ephBytes)
	if err != nil {
		return nil, ErrSealed
	}
	shared, err := key.ECDH(eph)
	if err != nil {
		return nil, ErrSealed
	}
	k, err := sealKey(shared, ephBytes, key.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(k)
	if err != nil {
		return nil, err
	}
	out, err := gcm.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrSealed
	}
	return out, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// SecretAAD binds a secret the CLI seals for the cloud to its name.
func SecretAAD(ns, name string) []byte { return []byte("sedna-secret/" + ns + "/" + name) }

// NodeSecretAAD binds a secret the cloud seals for a node to the node and
// the secret's name.
func NodeSecretAAD(node, ns, name string) []byte {
	return []byte("sedna-node-secret/" + node + "/" + ns + "/" + name)
}

// SecretEnv is a secret's data (a JSON object of strings) as environment
// entries KEY=VALUE, sorted by key.
func SecretEnv(plain []byte) ([]string, error) {
	var data map[string]string
	if err := json.Unmarshal(plain, &data); err != nil {
		return nil, err
	}
	env := make([]string, 0, len(data))
	for k, v := range data {
		if !EnvName.MatchString(k) {
			return nil, fmt.Errorf("key %q is not an environment variable's name", k)
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, nil
}

// EnvName is what a secret's key must be: an environment variable's name.
var EnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
