package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// get fetches http://addr+path and returns its status code and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitGet polls addr+path until its status code is code, and returns the
// body.
func waitGet(t *testing.T, addr, path string, code int, within time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		got, body := get(t, addr, path)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%s: %d %q after %v, want %d", addr, path, got, body, within, code)
		}
		<-time.After(100 * time.Millisecond) // polling another process's state
	}
}

// Issue 21, health: `sedna cloud` and `sedna edge` serve /healthz (up)
// and /readyz (store, broker and, at the edge, the cloud link) beside
// /metrics, on the address given (here loopback ports). The edge is ready
// once it joined, says "not ready" with the reason while its link is
// down, and ready again when it is back. Counters exist at zero from the
// start (dead letters, duplicates, refusals), and the queues' gauges name
// the node: the edge's own queues, and the cloud's outbox of the node
// (node="edge1", filled while the node is away by a Dataset placed on it).
func TestHealthReadinessAndMetrics(t *testing.T) {
	dir := t.TempDir()
	addr, cloudMetrics, edgeMetrics := freeAddr(t), freeAddr(t), freeAddr(t)
	url := "tcp://" + addr
	startProc(t, "cloud", "--listen", addr, "--data", filepath.Join(dir, "cloud"), "--credentials", writeCredentials(t, dir),
		"--metrics", cloudMetrics, "--log-level", "warn")
	link := proxyTo(t, url)
	startProc(t, append(edgeArgs("edge1", filepath.Join(dir, "edge1"), "tcp://"+link.Addr()), "--metrics", edgeMetrics)...)
	waitJoined(t, url, "edge1")

	for _, a := range []string{cloudMetrics, edgeMetrics} {
		if code, body := get(t, a, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s/healthz: %d %q", a, code, body)
		}
	}
	if code, body := get(t, cloudMetrics, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("the cloud's /readyz: %d %q", code, body)
	}
	waitGet(t, edgeMetrics, "/readyz", http.StatusOK, 10*time.Second)

	_, edgeSeries := get(t, edgeMetrics, "/metrics")
	for _, want := range []string{`sedna_dead_letters_total{component="edge/uplink",reason="refused"} 0`,
		`sedna_dedup_duplicates_total{where="edge-inbox"} 0`, `sedna_broker_refused_connections_total{reason="bad-credentials"} 0`,
		`sedna_acl_denied_total{path="publish"} 0`, `sedna_bridge_link_up{link="cloud"} 1`} {
		if !strings.Contains(edgeSeries, want) {
			t.Errorf("the edge's /metrics lacks %q", want)
		}
	}
	_, cloudSeries := get(t, cloudMetrics, "/metrics")
	for _, want := range []string{`sedna_dedup_duplicates_total{where="cloud-ingress"} 0`,
		`sedna_dead_letters_total{component="cloud/ingress",reason="malformed"} 0`, `sedna_broker_refused_connections_total{reason="plaintext-on-tls"} 0`} {
		if !strings.Contains(cloudSeries, want) {
			t.Errorf("the cloud's /metrics lacks %q", want)
		}
	}

	link.SetDown(true)
	body := waitGet(t, edgeMetrics, "/readyz", http.StatusServiceUnavailable, 10*time.Second)
	t.Logf("the edge with its link down: /readyz 503 %q", strings.TrimSpace(body))
	if !strings.Contains(body, "the link to the cloud (tcp://"+link.Addr()+") is down") {
		t.Errorf("the edge's /readyz with its link down: %q", body)
	}
	sednaCLI(t, url, "apiVersion: sedna.io/v1alpha1\nkind: Dataset\nmetadata: {name: away, namespace: default}\nspec: {url: /data/a.csv, format: csv, nodeName: edge1}\n",
		"apply", "-f", "-")
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, cloudSeries = get(t, cloudMetrics, "/metrics")
		if strings.Contains(cloudSeries, `sedna_queue_backlog_messages{node="edge1",queue="downlink",stream=""}`) &&
			!strings.Contains(cloudSeries, `sedna_queue_backlog_messages{node="edge1",queue="downlink",stream=""} 0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no downlink backlog for node edge1 on the cloud's /metrics:\n%s", grepLines(cloudSeries, "sedna_queue_"))
		}
		<-time.After(100 * time.Millisecond) // polling another process's state
	}
	t.Logf("the cloud's outbox of the away node: %s", grepLines(cloudSeries, `queue="downlink"`))
	link.SetDown(false)
	waitGet(t, edgeMetrics, "/readyz", http.StatusOK, 10*time.Second)
}

// grepLines is s's lines that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
