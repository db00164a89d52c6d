package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/federated/digits"
)

// chromium runs Debian's headless Chromium on url with args (as root it
// needs --no-sandbox) and returns its standard output.
func chromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,1100"}, args...)
	cmd := exec.CommandContext(ctx, "/usr/bin/chromium", append(all, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// Issue 21, must-show 3: the cloud manager's dashboard, fed live, in
// Debian's headless Chromium. A cloud and two nodes run a federated job;
// the test waits (on the dashboard's own state, as a user signed in with
// the broker's password) until the federated chart has points of four
// rounds; the page's event stream pushes the same state live; then the
// link `sedna dashboard` prints is opened in Chromium: the page shows both
// nodes online, the job, and the federated chart with its points (drawn by
// the cloud as SVG); a screenshot of it is saved (with
// SEDNA_UPDATE_SCREENSHOT=1 into docs/dashboard.png). Without a sign-in
// the page is refused.
func TestDashboardInHeadlessChromium(t *testing.T) {
	dir := t.TempDir()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	url := "tcp://" + addr
	startProc(t, "cloud", "--listen", addr, "--data", filepath.Join(dir, "cloud"), "--credentials", writeCredentials(t, dir),
		"--metrics", metricsAddr, "--read-dir", dir, "--log-level", "warn")
	nodes := flNodes(2)
	for _, n := range nodes {
		startProc(t, edgeArgs(n, filepath.Join(dir, n), url)...)
	}
	waitJoined(t, url, nodes...)
	f := &flFleet{dir: dir, ctx: t.Context(), api: apiClient(t, url), nodes: nodes}
	o := f.example(t, digits.Options{Job: "digits-dashboard", Rounds: 12, Nodes: nodes})

	base := "http://" + metricsAddr + "/dashboard/"
	if resp, err := http.Get(base); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the dashboard without a sign-in: %v %v", resp, err)
	}
	var st cloud.DashboardState
	for deadline := time.Now().Add(2 * time.Minute); st.Points["fl"] < 8; {
		req, _ := http.NewRequest(http.MethodGet, base+"state", nil)
		req.SetBasicAuth("viewer", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatalf("the dashboard's state: %v", err)
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the federated chart has %d points after 2 minutes: %+v", st.Points["fl"], st)
		}
		<-time.After(200 * time.Millisecond) // polling the dashboard's state
	}
	// The live feed: the page's event stream pushes the state, the
	// federated points included.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"events", nil)
	req.SetBasicAuth("viewer", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("the dashboard's events: %v %v", resp, err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var live cloud.DashboardState
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(data), &live); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	resp.Body.Close()
	if live.Points["fl"] < st.Points["fl"] || len(live.Nodes) != 2 {
		t.Fatalf("the live state: %+v", live)
	}
	link := strings.TrimSpace(sednaCLI(t, url, "", "dashboard"))
	if !strings.HasPrefix(link, base+"?token=") {
		t.Fatalf("sedna dashboard: %q", link)
	}

	dom := string(chromium(t, link, "--timeout=10000", "--dump-dom"))
	for _, want := range []string{"edge-0", "edge-1", o.Job, `class="online"`} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page in Chromium lacks %q:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, `data-fl="0"`) || !strings.Contains(dom, `src="chart/fl.svg?n=`) {
		t.Fatalf("the page in Chromium shows no federated points:\n%s", dom)
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	chromium(t, link, "--timeout=10000", "--screenshot="+shot)
	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() != 1280 {
		t.Fatalf("the screenshot: %v %v", img.Bounds(), err)
	}
	t.Logf("the dashboard in headless Chromium: both nodes online, job %s, %d federated points (%d rounds of accuracy and loss); screenshot %d bytes",
		o.Job, st.Points["fl"], st.Points["fl"]/2, len(raw))
	if os.Getenv("SEDNA_UPDATE_SCREENSHOT") != "" {
		if err := os.WriteFile(repoPath(t, "docs/dashboard.png"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
