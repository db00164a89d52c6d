package cloud

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A dashboard link's token opens the page for its user until it expires;
// a token changed by a byte, of another process, or expired does not; a
// broker user's password opens it too, a wrong one does not.
func TestDashboardAccess(t *testing.T) {
	d := newDashboard(nil, "cloud", func(u, p string) bool { return u == "viewer" && p == "pw" }, time.Second, slog.New(slog.DiscardHandler))
	other := newDashboard(nil, "cloud", nil, time.Second, slog.New(slog.DiscardHandler))
	tok := d.token("alice", time.Now().Add(time.Hour))
	if d.user(tok) != "alice" {
		t.Fatalf("a fresh token: %q", d.user(tok))
	}
	for name, bad := range map[string]string{
		// Not the last character: unpadded base64's last carries bits
		// that decode to nothing, so changing it may change no byte.
		"changed":           tok[:len(tok)-3] + string("AB"[strings.Count(tok[len(tok)-3:len(tok)-2], "A")]) + tok[len(tok)-2:],
		"another process's": other.token("alice", time.Now().Add(time.Hour)),
		"expired":           d.token("alice", time.Now().Add(-time.Second)),
		"junk":              "x.y",
	} {
		if u := d.user(bad); u != "" {
			t.Errorf("a %s token let in %q", name, u)
		}
	}
	h := d.Handler()
	for _, c := range []struct {
		name       string
		user, pass string
		cookie     string
		want       int
	}{
		{"no sign-in", "", "", "", http.StatusUnauthorized},
		{"a wrong password", "viewer", "nope", "", http.StatusUnauthorized},
		{"a broker user", "viewer", "pw", "", http.StatusOK},
		{"a link's cookie", "", "", tok, http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/dashboard/state", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		if c.cookie != "" {
			req.AddCookie(&http.Cookie{Name: dashboardCookie, Value: c.cookie})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
	}
	// A link sets the cookie and sends the browser to the page.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/dashboard/?token="+tok, nil))
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Set-Cookie"), dashboardCookie+"="+tok) {
		t.Errorf("a link: %d %q", w.Code, w.Header().Get("Set-Cookie"))
	}
}

// A series keeps the last value of an x seen again (a round recorded
// twice) and at most dashboardPoints points; a chart of no points says
// so, one of points is an SVG.
func TestDashboardSeriesAndCharts(t *testing.T) {
	var s series
	s.add(1, 0.5)
	s.add(1, 0.6)
	s.add(2, 0.7)
	if len(s.x) != 2 || s.y[0] != 0.6 {
		t.Fatalf("series %v %v", s.x, s.y)
	}
	for i := range dashboardPoints + 10 {
		s.add(float64(3+i), 1)
	}
	if len(s.x) != dashboardPoints || s.x[len(s.x)-1] != float64(dashboardPoints+12) {
		t.Fatalf("%d points, the last at %v", len(s.x), s.x[len(s.x)-1])
	}
	d := newDashboard(nil, "cloud", nil, time.Second, slog.New(slog.DiscardHandler))
	svg, err := d.chart("fl")
	if err != nil || !strings.Contains(string(svg), "no points yet") {
		t.Fatalf("an empty chart: %v", err)
	}
	d.addLocked("fl", "job accuracy", 1, 0.5)
	d.addLocked("fl", "job accuracy", 2, 0.8)
	if svg, err = d.chart("fl"); err != nil || !strings.HasPrefix(string(svg), "<svg") || !strings.Contains(string(svg), "job accuracy") {
		t.Fatalf("a chart: %v %.80s", err, svg)
	}
	if _, err := d.chart("nope"); err == nil {
		t.Error("a chart of no name drawn")
	}
}

// An open event stream ends when the dashboard closes (the cloud's HTTP
// server then shuts down without waiting for it).
func TestDashboardEventsEndWithIt(t *testing.T) {
	d := newDashboard(nil, "cloud", func(string, string) bool { return true }, time.Hour, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/dashboard/events", nil)
	req.SetBasicAuth("viewer", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", resp, err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	close(d.stop) // as close does, without a run loop to wait for
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream still open 10 s after the dashboard closed")
	}
	resp.Body.Close()
}
