package cloud

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// Secrets are what Datasets, Models and learning jobs name by
// credentialName (Sedna copies them into annotations sent in clear): kept
// in the cloud's store encrypted at rest (AES-256-GCM), received from the
// CLI sealed for the cloud's key, and sent to a node sealed for that
// node's key (made when it joined), so that neither the broker, nor a log,
// nor anything between ever holds one in clear. The workers of a node that
// runs the job get the secret's keys as environment variables. One file,
// {caDir}/secrets.key (0600), holds the cloud's X25519 key; the at-rest key
// is derived from it.
type Secrets struct {
	st   store.Store
	key  *ecdh.PrivateKey
	rest cipher.AEAD
	// nodeKey is a node's sealing key (it joined with one), or an error
	// saying why there is none.
	nodeKey func(node string) (*ecdh.PublicKey, error)
	now     func() time.Time
}

// SecretsKeyFile is the cloud's secrets key, in its CA directory.
const SecretsKeyFile = "secrets.key"

// Bounds on a secret.
const (
	maxSecretBytes = 64 << 10
	maxSecretKeys  = 64
)

// openSecrets reads (or makes) the secrets key in dir.
func openSecrets(st store.Store, dir string, nodeKey func(string) (*ecdh.PublicKey, error)) (*Secrets, error) {
	path := filepath.Join(dir, SecretsKeyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := pki.NewSealKey()
		if err != nil {
			return nil, err
		}
		raw = k.Bytes()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := pki.WriteFile(path, raw, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("cloud: the secrets key: %w", err)
	}
	key, err := pki.ParseSealKey(raw)
	if err != nil {
		return nil, fmt.Errorf("cloud: the secrets key %s: %w", path, err)
	}
	restKey, err := hkdf.Key(sha256.New, raw, nil, "sedna-secrets-at-rest", 32)
	if err != nil {
		return nil, err
	}
	rest, err := newAEAD(restKey)
	if err != nil {
		return nil, err
	}
	s := &Secrets{st: st, key: key, rest: rest, nodeKey: nodeKey, now: time.Now}
	if err := s.checkKey(path); err != nil {
		return nil, err
	}
	return s, nil
}

// keyIDKey keeps the fingerprint of the key the store's secrets are
// sealed with.
var keyIDKey = []byte("key-id")

// checkKey refuses a key that is not the one the store's secrets were
// sealed with: replicas of the cloud manager share one store (in etcd)
// and each reads its own key file, so a replica given another file would
// lead and fail every secret it opens. A store without secrets takes the
// key it is given.
func (s *Secrets) checkKey(path string) error {
	sum := sha256.Sum256(s.PublicKey())
	id := hex.EncodeToString(sum[:8])
	had, err := s.st.Get(keyIDKey)
	switch {
	case err == nil && string(had) == id:
		return nil
	case err == nil:
		errAny := errors.New("a secret")
		if err := s.st.Scan([]byte("secret/"), nil, func(_, _ []byte) error { return errAny }); errors.Is(err, errAny) {
			return fmt.Errorf("cloud: the secrets key %s (fingerprint %s) is not the key this cloud's secrets were sealed with (fingerprint %s): "+
				"give every replica the same key file, or restore it (docs/SCALE.md)", path, id, had)
		} else if err != nil {
			return fmt.Errorf("cloud: reading the secrets: %w", err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("cloud: the secrets key's fingerprint: %w", err)
	}
	var b store.Batch
	b.Put(keyIDKey, []byte(id))
	return s.st.Write(&b)
}

// PublicKey is the key the CLI seals a secret for (its 32 bytes).
func (s *Secrets) PublicKey() []byte { return s.key.PublicKey().Bytes() }

// secretRecord is a secret as the store keeps it: its keys in clear, its
// values sealed at rest.
type secretRecord struct {
	Keys    []string `msgpack:"keys"`
	Created int64    `msgpack:"created"`
	Nonce   []byte   `msgpack:"nonce"`
	Sealed  []byte   `msgpack:"sealed"`
}

func secretKey(ns, name string) []byte { return []byte("secret/" + ns + "/" + name) }

// Create keeps the secret ns/name whose data (a JSON object of string
// values, keys environment variable names) the CLI sealed for PublicKey.
func (s *Secrets) Create(ns, name string, sealed []byte) ([]string, error) {
	if err := topics.ValidateName("secret", name); err != nil {
		return nil, err
	}
	if err := topics.ValidateName("namespace", ns); err != nil {
		return nil, err
	}
	plain, err := pki.Open(s.key, sealed, pki.SecretAAD(ns, name))
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w (sealed for another cloud, or for another name)", name, err)
	}
	var data map[string]string
	if err := json.Unmarshal(plain, &data); err != nil {
		return nil, fmt.Errorf("secret %s: want a JSON object of strings: %w", name, err)
	}
	if len(data) == 0 || len(data) > maxSecretKeys || len(plain) > maxSecretBytes {
		return nil, fmt.Errorf("secret %s: %d keys in %d bytes: want 1 to %d keys within %d bytes", name, len(data), len(plain), maxSecretKeys, maxSecretBytes)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		if !pki.EnvName.MatchString(k) {
			return nil, fmt.Errorf("secret %s: key %q is not an environment variable's name", name, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	nonce := make([]byte, s.rest.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	rec := secretRecord{Keys: keys, Created: s.now().UnixNano(), Nonce: nonce, Sealed: s.rest.Seal(nil, nonce, plain, secretKey(ns, name))}
	raw, err := msgpack.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var b store.Batch
	b.Put(secretKey(ns, name), raw)
	return keys, s.st.Write(&b)
}

// data reads a secret's values.
func (s *Secrets) data(ns, name string) ([]byte, error) {
	raw, err := s.st.Get(secretKey(ns, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no secret %s in namespace %s (sedna secret create)", name, ns)
	}
	if err != nil {
		return nil, err
	}
	var rec secretRecord
	if err := msgpack.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	plain, err := s.rest.Open(nil, rec.Nonce, rec.Sealed, secretKey(ns, name))
	if err != nil {
		return nil, fmt.Errorf("secret %s does not open with this cloud's key", name)
	}
	return plain, nil
}

// SecretInfo describes a secret: its name and keys, never its values.
type SecretInfo struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Keys      []string  `json:"keys"`
	Created   time.Time `json:"created"`
}

// List describes the secrets of namespace ns ("" all).
func (s *Secrets) List(ns string) ([]SecretInfo, error) {
	prefix := "secret/"
	if ns != "" {
		prefix += ns + "/"
	}
	var out []SecretInfo
	err := s.st.Scan([]byte(prefix), nil, func(k, v []byte) error {
		var rec secretRecord
		if err := msgpack.Unmarshal(v, &rec); err != nil {
			return err
		}
		nsName := strings.SplitN(strings.TrimPrefix(string(k), "secret/"), "/", 2)
		if len(nsName) == 2 {
			out = append(out, SecretInfo{Namespace: nsName[0], Name: nsName[1], Keys: rec.Keys, Created: time.Unix(0, rec.Created)})
		}
		return nil
	})
	return out, err
}

// Delete forgets a secret.
func (s *Secrets) Delete(ns, name string) error {
	if _, err := s.st.Get(secretKey(ns, name)); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no secret %s in namespace %s", name, ns)
	}
	var b store.Batch
	b.Delete(secretKey(ns, name))
	return s.st.Write(&b)
}

// SealFor seals the secrets names (of namespace ns) for node: each box
// opens only with the node's key, bound to the node and the name.
func (s *Secrets) SealFor(node, ns string, names []string) (map[string][]byte, error) {
	pub, err := s.nodeKey(node)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range names {
		plain, err := s.data(ns, name)
		if err != nil {
			return nil, err
		}
		if out[name], err = pki.Seal(pub, plain, pki.NodeSecretAAD(node, ns, name)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// credentialNames are the secrets a resource's workers get: its own
// credentialName and those of the Datasets and Models it names (found
// with lookup).
func credentialNames(r *api.Resource, lookup func(kind, name string) *api.Resource) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	add(ownCredential(r))
	for _, ref := range r.References() {
		if ref.Kind != api.KindDataset && ref.Kind != api.KindModel {
			continue
		}
		if d := lookup(ref.Kind, ref.Name); d != nil {
			add(ownCredential(d))
		}
	}
	sort.Strings(names)
	return names
}

func ownCredential(r *api.Resource) string {
	switch s := r.Spec.(type) {
	case *api.DatasetSpec:
		return s.CredentialName
	case *api.ModelSpec:
		return s.CredentialName
	case *api.IncrementalLearningJobSpec:
		return s.CredentialName
	case *api.LifelongLearningJobSpec:
		return s.CredentialName
	}
	return ""
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Secret operations of the control plane: list (names and keys only),
// the cloud's public key to seal for, create (a sealed secret), delete.
const (
	OpSecretList   = "secret.list"
	OpSecretKey    = "secret.key"
	OpSecretCreate = "secret.create"
	OpSecretDelete = "secret.delete"
)

// SecretRequest is the body of the secret operations: a secret's
// namespace and name, and (create) its data sealed for the cloud's key
// (SecretAAD binds it to the name).
type SecretRequest struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Sealed    []byte `json:"sealed,omitempty"`
}

// SecretReply answers them.
type SecretReply struct {
	PublicKey []byte       `json:"publicKey,omitempty"`
	Keys      []string     `json:"keys,omitempty"`
	Secrets   []SecretInfo `json:"secrets,omitempty"`
}

func (c *ControlPlane) secretOp(who caller, req topics.APIRequest) topics.APIReply {
	if c.cfg.Secrets == nil {
		return topics.APIReply{Error: req.Op + ": this cloud keeps no secrets"}
	}
	var in SecretRequest
	if len(req.Body) > 0 {
		if err := json.Unmarshal(req.Body, &in); err != nil {
			return topics.APIReply{Error: req.Op + ": " + err.Error()}
		}
	}
	if in.Namespace == "" {
		in.Namespace = "default"
	}
	var out SecretReply
	var err error
	switch req.Op {
	case OpSecretKey:
		out.PublicKey = c.cfg.Secrets.PublicKey()
	case OpSecretList:
		out.Secrets, err = c.cfg.Secrets.List(in.Namespace)
	case OpSecretCreate:
		out.Keys, err = c.cfg.Secrets.Create(in.Namespace, in.Name, in.Sealed)
		if err == nil {
			c.log.Info("secret kept", "user", who.user, "namespace", in.Namespace, "name", in.Name, "keys", out.Keys)
			c.reevaluate(c.cfg.Now()) // a job may wait for it
		}
	case OpSecretDelete:
		err = c.cfg.Secrets.Delete(in.Namespace, in.Name)
		if err == nil {
			c.log.Info("secret deleted", "user", who.user, "namespace", in.Namespace, "name", in.Name)
		}
	}
	if err != nil {
		return topics.APIReply{Error: err.Error()}
	}
	body, _ := json.Marshal(out)
	return topics.APIReply{Body: body}
}

// credentials are the secrets a resource's workers get (a Dataset's or a
// Model's go with the jobs that use them).
func (c *ControlPlane) credentials(e *entry) []string {
	if e.res.Kind == api.KindDataset || e.res.Kind == api.KindModel {
		return nil
	}
	ns := e.res.Metadata.Namespace
	return credentialNames(e.res, func(kind, name string) *api.Resource {
		if d := c.res[kind+"/"+ns+"/"+name]; d != nil {
			return d.res
		}
		return nil
	})
}

// secretWaits says what a resource's secrets wait for: the cloud to keep
// secrets, a secret to be created, a node to have a key for them.
func (c *ControlPlane) secretWaits(e *entry) []string {
	names := c.credentials(e)
	if len(names) == 0 {
		return nil
	}
	if c.cfg.Secrets == nil {
		return []string{fmt.Sprintf("secrets %v (credentialName): this cloud keeps no secrets", names)}
	}
	var out []string
	for _, n := range c.nodesOf(e) {
		if err := c.cfg.Secrets.Ready(n, e.res.Metadata.Namespace, names); err != nil && n != c.cfg.Name {
			out = append(out, fmt.Sprintf("secrets %v (credentialName) for node %s: %v", names, n, err))
		}
	}
	return out
}

// Ready says why the secrets names cannot reach node: one is missing, or
// the node has no key for them.
func (s *Secrets) Ready(node, ns string, names []string) error {
	for _, name := range names {
		if _, err := s.st.Get(secretKey(ns, name)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no secret %s (sedna secret create %s)", name, name)
			}
			return err
		}
	}
	_, err := s.nodeKey(node)
	return err
}

// Env is the environment a worker of the cloud gets of the secrets names:
// each key as a variable.
func (s *Secrets) Env(ns string, names []string) ([]string, error) {
	var env []string
	for _, name := range names {
		plain, err := s.data(ns, name)
		if err != nil {
			return nil, err
		}
		kv, err := pki.SecretEnv(plain)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		env = append(env, kv...)
	}
	return env, nil
}

// cloudWorkerEnv is the environment of the cloud's own workers: the
// secrets of their job (its credentialName, its Datasets' and Models').
func (c *ControlPlane) cloudWorkerEnv(spec workers.Spec) []string {
	v, ok := c.jobSecrets.Load(spec.Job.String())
	if !ok || c.cfg.Secrets == nil {
		return nil
	}
	env, err := c.cfg.Secrets.Env(spec.Job.Namespace, v.([]string))
	if err != nil {
		c.log.Warn("a worker's secrets left out", "job", spec.Job.String(), "error", err)
		return nil
	}
	return env
}
