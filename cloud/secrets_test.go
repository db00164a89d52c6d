package cloud

import (
	"crypto/ecdh"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/store"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// A secret the CLI sealed for the cloud is kept encrypted (its value is
// not in the store's bytes), listed by its keys, sealed for a node that
// has a key (and opens there only, bound to the node and the name), and
// refused for a node without one, and given to the cloud's own workers of
// a job that names it; a secret sealed for another name, a key that is no
// variable's name, and a missing secret are refused clearly.
func TestSecretsKeep(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	node, _ := pki.NewSealKey()
	keys := map[string]*ecdh.PublicKey{"edge1": node.PublicKey()}
	s, err := openSecrets(st, t.TempDir(), func(n string) (*ecdh.PublicKey, error) {
		if k, ok := keys[n]; ok {
			return k, nil
		}
		return nil, errors.New("node " + n + " has no key for secrets")
	})
	if err != nil {
		t.Fatal(err)
	}
	cloudKey, _ := pki.ParseSealPublic(s.PublicKey())
	seal := func(ns, name, data string) []byte {
		b, err := pki.Seal(cloudKey, []byte(data), pki.SecretAAD(ns, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	got, err := s.Create("default", "s3", seal("default", "s3", `{"SECRET_ACCESS_KEY":"canary-value","ACCESS_KEY_ID":"id"}`))
	if err != nil || strings.Join(got, ",") != "ACCESS_KEY_ID,SECRET_ACCESS_KEY" {
		t.Fatalf("create: %v %v", got, err)
	}
	_ = st.Scan(nil, nil, func(k, v []byte) error {
		if strings.Contains(string(v), "canary-value") {
			t.Errorf("the secret's value in clear under %q", k)
		}
		return nil
	})
	list, err := s.List("default")
	if err != nil || len(list) != 1 || list[0].Name != "s3" || len(list[0].Keys) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	boxes, err := s.SealFor("edge1", "default", []string{"s3"})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := pki.Open(node, boxes["s3"], pki.NodeSecretAAD("edge1", "default", "s3"))
	if err != nil || !strings.Contains(string(plain), "canary-value") {
		t.Fatalf("the node's box: %q %v", plain, err)
	}
	if _, err := pki.Open(node, boxes["s3"], pki.NodeSecretAAD("edge2", "default", "s3")); err == nil {
		t.Error("edge1's box opened as edge2's")
	}
	if err := s.Ready("edge2", "default", []string{"s3"}); err == nil || !strings.Contains(err.Error(), "no key for secrets") {
		t.Errorf("a node without a key: %v", err)
	}
	if err := s.Ready("edge1", "default", []string{"gcs"}); err == nil || !strings.Contains(err.Error(), "no secret gcs") {
		t.Errorf("a missing secret: %v", err)
	}
	for name, c := range map[string]struct {
		name  string
		box   []byte
		wants string
	}{
		"sealed for another name": {"s4", seal("default", "s3", `{"A":"b"}`), "sealed for another cloud, or for another name"},
		"a bad key":               {"s5", seal("default", "s5", `{"1A":"b"}`), "not an environment variable's name"},
		"no keys":                 {"s6", seal("default", "s6", `{}`), "want 1 to"},
		"not JSON":                {"s7", seal("default", "s7", `nope`), "JSON object"},
	} {
		if _, err := s.Create("default", c.name, c.box); err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: %v, want %q", name, err, c.wants)
		}
	}
	env, err := s.Env("default", []string{"s3"})
	if err != nil || strings.Join(env, " ") != "ACCESS_KEY_ID=id SECRET_ACCESS_KEY=canary-value" {
		t.Errorf("env: %v %v", env, err)
	}
	// The cloud's own workers of a job that names the secret get it.
	c := &ControlPlane{cfg: ControlConfig{Secrets: s}, log: slog.New(slog.DiscardHandler)}
	job := topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: "ll"}
	c.jobSecrets.Store(job.String(), []string{"s3"})
	if env := c.cloudWorkerEnv(workers.Spec{Job: job}); len(env) != 2 || env[1] != "SECRET_ACCESS_KEY=canary-value" {
		t.Errorf("the cloud's worker's env: %v", env)
	}
	if env := c.cloudWorkerEnv(workers.Spec{Job: topics.JobRef{Kind: api.KindLifelongLearningJob, Namespace: "default", Name: "other"}}); env != nil {
		t.Errorf("a job without secrets got %v", env)
	}
	if err := s.Delete("default", "s3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("default", "s3"); err == nil {
		t.Error("a secret deleted twice")
	}
}

// A store whose secrets were sealed with one key refuses another key (a
// replica given its own key file instead of the shared one), saying which
// and what to do; the same key opens it again; a store without secrets
// takes a new key.
func TestSecretsRefuseAnotherKey(t *testing.T) {
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	noKeys := func(n string) (*ecdh.PublicKey, error) { return nil, errors.New("no key") }
	first, second := t.TempDir(), t.TempDir()
	if _, err := openSecrets(st, first, noKeys); err != nil {
		t.Fatal(err)
	}
	// No secret yet: another key is taken, and the first again.
	if _, err := openSecrets(st, second, noKeys); err != nil {
		t.Fatalf("a store without secrets refused a new key: %v", err)
	}
	s, err := openSecrets(st, first, noKeys)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := pki.ParseSealPublic(s.PublicKey())
	sealed, err := pki.Seal(pub, []byte(`{"K":"v"}`), pki.SecretAAD("default", "s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("default", "s", sealed); err != nil {
		t.Fatal(err)
	}
	_, err = openSecrets(st, second, noKeys)
	if err == nil || !strings.Contains(err.Error(), "not the key this cloud's secrets were sealed with") || !strings.Contains(err.Error(), "same key file") {
		t.Fatalf("another key opened a store with secrets: %v", err)
	}
	if _, err := openSecrets(st, first, noKeys); err != nil {
		t.Fatalf("the key the secrets were sealed with: %v", err)
	}
}
