package join

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/store"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T) (*Service, *clock) {
	t.Helper()
	st, err := store.OpenBadger(store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	s, err := New(Config{CA: ca, Store: st, Now: clk.now, TLSPort: "8883"})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func csr(t *testing.T) string {
	key, _ := pki.NewKey()
	c, err := pki.CSR(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(c)
}

func join(t *testing.T, s *Service, token string) (int, Reply) {
	t.Helper()
	body, _ := json.Marshal(Request{Token: token, CSR: csr(t)})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, JoinPath, bytes.NewReader(body)))
	var rep Reply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	return w.Code, rep
}

// A token joins its node once: the reply names the node and carries a
// certificate of it and the CA; then the token is used. An expired, a
// revoked, a mismatched, an unknown token and one of another cloud are
// refused with their reason.
func TestTokens(t *testing.T) {
	s, clk := newService(t)
	text, tok, err := s.CreateToken("edge-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	code, rep := join(t, s, text)
	if code != http.StatusOK || rep.Node != "edge-1" || rep.TLSPort != "8883" || rep.CA != string(s.cfg.CA.PEM()) {
		t.Fatalf("join: %d %+v", code, rep)
	}
	cert, err := pki.ParseCert([]byte(rep.Cert))
	if err != nil || pki.NodeOf(cert) != "edge-1" || s.Refused("edge-1", cert) != "" {
		t.Fatalf("the certificate: node %q, refused %q, %v", pki.NodeOf(cert), s.Refused("edge-1", cert), err)
	}
	if s.Refused("edge-2", cert) == "" {
		t.Error("edge-1's certificate taken for edge-2")
	}
	expiring, _, _ := s.CreateToken("edge-2", time.Minute)
	revoked, rt, _ := s.CreateToken("edge-3", time.Hour)
	if err := s.RevokeToken(rt.ID); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(2 * time.Minute)
	other, _ := pki.NewCA("other", time.Hour)
	for _, c := range []struct{ name, token, want string }{
		{"used", text, "was used at"},
		{"expired", expiring, "expired at"},
		{"revoked", revoked, "is revoked"},
		{"mismatched", tok.ID + "." + strings.Repeat("0", 32) + "." + s.cfg.CA.Pin(), "does not match"},
		{"unknown", "00000000." + strings.Repeat("0", 32) + "." + s.cfg.CA.Pin(), "unknown token"},
		{"another cloud's", strings.Repeat("1", 8) + "." + strings.Repeat("0", 32) + "." + other.Pin(), "another cloud"},
		{"not a token", "hello", "not a join token"},
	} {
		code, rep := join(t, s, c.token)
		if code == http.StatusOK || !strings.Contains(rep.Error, c.want) {
			t.Errorf("%s: %d %q, want %q", c.name, code, rep.Error, c.want)
		}
	}
	list, err := s.Tokens()
	if err != nil || len(list) != 3 {
		t.Fatalf("tokens: %v %v", list, err)
	}
	states := map[string]string{}
	for _, tk := range list {
		states[tk.Node] = tk.State(clk.t)
	}
	if want := map[string]string{"edge-1": "used", "edge-2": "expired", "edge-3": "revoked"}; !equal(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Revoking a node refuses every certificate issued to it, for good (a new
// service on the same store still refuses them), kicks its bridge, and
// leaves a certificate issued after (a new join) alone.
func TestRevokeNode(t *testing.T) {
	s, _ := newService(t)
	var kicked []string
	s.cfg.Kick = func(n string) { kicked = append(kicked, n) }
	var certs []string
	for range 2 {
		text, _, _ := s.CreateToken("edge-1", time.Hour)
		_, rep := join(t, s, text)
		certs = append(certs, rep.Cert)
	}
	n, err := s.RevokeNode("edge-1")
	if err != nil || n != 2 || len(kicked) != 1 || kicked[0] != "edge-1" {
		t.Fatalf("revoke: %d certificates, kicked %v, %v", n, kicked, err)
	}
	again, err := New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range certs {
		cert, _ := pki.ParseCert([]byte(c))
		if why := again.Refused("edge-1", cert); !strings.Contains(why, "revoked") {
			t.Errorf("certificate %d after revocation: %q", i, why)
		}
	}
	text, _, _ := s.CreateToken("edge-1", time.Hour)
	_, rep := join(t, s, text)
	cert, _ := pki.ParseCert([]byte(rep.Cert))
	if why := s.Refused("edge-1", cert); why != "" {
		t.Errorf("a certificate of a new join after revocation: %q", why)
	}
}
