package cloud

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-analyze/charts"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/topics"
)

// The dashboard: a page served by the cloud manager beside /metrics
// (/dashboard/), its state as JSON (state), the same pushed live as
// server-sent events (events), and its charts drawn here as SVG
// (chart/NAME.svg, go-analyze/charts, the charts of `sedna hil report`),
// fed from the cloud broker (each federated round's record as it is
// published) and the control plane's state, sampled every tick:
// nodes (state, the cloud's outbox for each, its oldest message, version,
// arch), jobs (phase, stage, round, workers) and, over time, federated
// accuracy and loss per round, joint inference's offload ratio and
// latency, learning jobs' numbers per cycle, and each node's outbox. The
// assets are embedded: nothing is fetched from elsewhere. Access as the
// CLI's: a user of the broker (HTTP Basic), or a link `sedna dashboard`
// makes for its user (a token signed by the process, valid 12 hours).

//go:embed dashboard/index.html
var dashboardFS embed.FS

// dashboardPage is the page with the state it was asked at (the script
// then follows the live state).
var dashboardPage = template.Must(template.New("index.html").Funcs(template.FuncMap{"age": func(s float64) string {
	switch {
	case s <= 0:
		return "-"
	case s < 120:
		return strconv.Itoa(int(s)) + " s"
	}
	return strconv.Itoa(int(s/60)) + " min"
}}).ParseFS(dashboardFS, "dashboard/index.html"))

// OpDashboardURL makes the asking user a link to the dashboard
// (DashboardLink).
const OpDashboardURL = "dashboard.url"

// DashboardLink is a link to the dashboard: its path with a token, and
// the address it is served on (its host may be a wildcard: the CLI puts
// the cloud's host there).
type DashboardLink struct {
	Path string `json:"path"`
	Addr string `json:"addr"`
}

// dashboardPoints bounds each series the dashboard keeps.
const dashboardPoints = 600

// DashboardState is what the page shows, as /dashboard/state gives it.
type DashboardState struct {
	Cloud  string           `json:"cloud"`
	At     time.Time        `json:"at"`
	Nodes  []DashboardNode  `json:"nodes"`
	Jobs   []DashboardJob   `json:"jobs"`
	Points map[string]int   `json:"points"`
	Series []DashboardChart `json:"series,omitempty"`
}

// DashboardNode is a node's row.
type DashboardNode struct {
	Name          string  `json:"name"`
	State         string  `json:"state"`
	Backlog       int64   `json:"backlog"`
	OldestSeconds float64 `json:"oldestSeconds"`
	Version       string  `json:"version,omitempty"`
	Arch          string  `json:"arch,omitempty"`
}

// DashboardJob is a job's row.
type DashboardJob struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Phase   string `json:"phase"`
	Stage   string `json:"stage,omitempty"`
	Round   int64  `json:"round,omitempty"`
	Ready   int    `json:"ready"`
	Desired int    `json:"desired"`
}

// DashboardChart names a chart's series and their points.
type DashboardChart struct {
	Chart  string `json:"chart"`
	Series string `json:"series"`
	Points int    `json:"points"`
}

// series is one line of a chart: x and y.
type series struct {
	x, y []float64
}

func (s *series) add(x, y float64) {
	if n := len(s.x); n > 0 && s.x[n-1] == x {
		s.y[n-1] = y // the same round again: its last value
		return
	}
	s.x, s.y = append(s.x, x), append(s.y, y)
	if len(s.x) > dashboardPoints {
		s.x, s.y = s.x[1:], s.y[1:]
	}
}

type dashboard struct {
	c     *ControlPlane
	name  string
	log   *slog.Logger
	check func(user, password string) bool
	key   []byte
	tick  time.Duration
	start time.Time

	mu     sync.Mutex
	state  DashboardState
	charts map[string]map[string]*series // chart -> series name -> points
	subs   map[chan []byte]struct{}

	stop chan struct{}
	done chan struct{}
}

func newDashboard(c *ControlPlane, name string, check func(user, password string) bool, tick time.Duration, log *slog.Logger) *dashboard {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &dashboard{c: c, name: name, log: log, check: check, key: key, tick: tick, start: time.Now(),
		charts: map[string]map[string]*series{"fl": {}, "ji": {}, "il": {}, "backlog": {}}, subs: map[chan []byte]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// roundRecord is what the dashboard reads of a federated job's round
// record (its envelope's body on JOB/rounds: federated.Record's wire
// names).
type roundRecord struct {
	Round    int64   `msgpack:"r"`
	Accuracy float64 `msgpack:"a"`
	Loss     float64 `msgpack:"l"`
}

// watchRounds takes every federated job's round records from the cloud
// broker as they are published: the federated chart has every round,
// however fast the rounds go.
func (d *dashboard) watchRounds(bus interface {
	Watch(filter string, handler func(topic string, payload []byte) error) (func() error, error)
}) (func() error, error) {
	filter := topics.JobTopic(topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "+", Name: "+"}, "rounds")
	return bus.Watch(filter, func(topic string, payload []byte) error {
		env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
		var rec roundRecord
		if err != nil || env.DecodeBody(&rec) != nil || rec.Round <= 0 {
			return nil
		}
		parts := strings.Split(strings.TrimSuffix(topic, "/rounds"), "/")
		job := parts[len(parts)-1]
		d.mu.Lock()
		defer d.mu.Unlock()
		if rec.Accuracy >= 0 {
			d.addLocked("fl", job+" accuracy", float64(rec.Round), rec.Accuracy)
		}
		d.addLocked("fl", job+" loss", float64(rec.Round), rec.Loss)
		return nil
	})
}

func (d *dashboard) addLocked(chart, name string, x, y float64) {
	s := d.charts[chart][name]
	if s == nil {
		s = &series{}
		d.charts[chart][name] = s
	}
	s.add(x, y)
}

// run samples the control plane every tick until close.
func (d *dashboard) run() {
	defer close(d.done)
	t := time.NewTicker(d.tick)
	defer t.Stop()
	for {
		d.sample()
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
	}
}

func (d *dashboard) close() {
	close(d.stop)
	<-d.done
}

// sample reads the nodes and jobs from the control plane's goroutine and
// adds the charts' points, then pushes the state to the pages open.
func (d *dashboard) sample() {
	var nodes []topics.NodeInfo
	var jobs []jobSnapshot
	if !d.c.read(func() { nodes, jobs = d.c.nodeList(), d.c.jobSnapshots() }) {
		return
	}
	now := time.Now()
	secs := now.Sub(d.start).Seconds()
	st := DashboardState{Cloud: d.name, At: now, Nodes: []DashboardNode{}, Jobs: []DashboardJob{}, Points: map[string]int{}}
	d.mu.Lock()
	defer d.mu.Unlock()
	add := d.addLocked
	for _, n := range nodes {
		row := DashboardNode{Name: n.Name, State: n.State, Backlog: n.Backlog, Version: n.Version, Arch: n.Arch}
		if n.Oldest > 0 {
			row.OldestSeconds = now.Sub(time.Unix(0, n.Oldest)).Seconds()
		}
		st.Nodes = append(st.Nodes, row)
		add("backlog", n.Name, secs, float64(n.Backlog))
	}
	for _, j := range jobs {
		m := j.st.Metrics
		row := DashboardJob{Kind: j.kind, Name: j.name, Phase: j.st.Phase, Ready: j.st.ReadyWorkers, Desired: j.st.DesiredWorkers,
			Round: int64(m["round"])}
		if s := j.st.Stage; s != nil {
			row.Stage = fmt.Sprintf("cycle %d %s %s", s.Cycle, s.Stage, s.Phase)
		}
		st.Jobs = append(st.Jobs, row)
		switch j.kind {
		case api.KindJointInferenceService:
			if v, ok := m["uploadRatio"]; ok {
				add("ji", j.name+" offload ratio", secs, v)
			}
			if v, ok := m["edgeLatencyP50ms"]; ok {
				add("ji", j.name+" edge p50 (ms/100)", secs, v/100)
			}
		case api.KindIncrementalLearningJob, api.KindLifelongLearningJob:
			if s := j.st.Stage; s != nil && s.Cycle > 0 {
				if v, ok := m["accuracy"]; ok {
					add("il", j.name+" accuracy", float64(s.Cycle), v)
				}
				add("il", j.name+" model version", float64(s.Cycle), float64(s.Serving))
			}
		}
	}
	slices.SortFunc(st.Jobs, func(a, b DashboardJob) int { return strings.Compare(a.Kind+a.Name, b.Kind+b.Name) })
	for chart, byName := range d.charts {
		for name, s := range byName {
			st.Points[chart] += len(s.x)
			st.Series = append(st.Series, DashboardChart{Chart: chart, Series: name, Points: len(s.x)})
		}
	}
	slices.SortFunc(st.Series, func(a, b DashboardChart) int { return strings.Compare(a.Chart+a.Series, b.Chart+b.Series) })
	d.state = st
	raw, _ := json.Marshal(st)
	for ch := range d.subs {
		select {
		case ch <- raw:
		default: // a slow page misses a state; the next one follows
		}
	}
}

// token signs a link's token for user, valid until expires.
func (d *dashboard) token(user string, expires time.Time) string {
	payload := user + "|" + strconv.FormatInt(expires.Unix(), 10)
	mac := hmac.New(sha256.New, d.key)
	mac.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// user is whom a token is for ("" when it is not a valid one).
func (d *dashboard) user(tok string) string {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return ""
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return ""
	}
	mac := hmac.New(sha256.New, d.key)
	mac.Write(payload)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ""
	}
	user, exp, _ := strings.Cut(string(payload), "|")
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > t {
		return ""
	}
	return user
}

const dashboardCookie = "sedna_dashboard"

// authorized lets in a request with a valid token (query or cookie) or a
// broker user's password (HTTP Basic).
func (d *dashboard) authorized(w http.ResponseWriter, r *http.Request) bool {
	if c, err := r.Cookie(dashboardCookie); err == nil && d.user(c.Value) != "" {
		return true
	}
	if u, p, ok := r.BasicAuth(); ok && d.check != nil && d.check(u, p) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="sedna"`)
	http.Error(w, "sign in as a user of the cloud broker, or open the link `sedna dashboard` prints", http.StatusUnauthorized)
	return false
}

// Handler serves the dashboard under /dashboard/.
func (d *dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard/{$}", func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("token"); tok != "" {
			if d.user(tok) == "" {
				http.Error(w, "this link's token is not valid (expired, or from before the cloud restarted): run sedna dashboard again", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: dashboardCookie, Value: tok, Path: "/dashboard/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
			return
		}
		if !d.authorized(w, r) {
			return
		}
		d.mu.Lock()
		st := d.state
		d.mu.Unlock()
		var page bytes.Buffer
		if err := dashboardPage.Execute(&page, st); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'")
		_, _ = w.Write(page.Bytes())
	})
	mux.HandleFunc("GET /dashboard/state", func(w http.ResponseWriter, r *http.Request) {
		if !d.authorized(w, r) {
			return
		}
		d.mu.Lock()
		raw, _ := json.Marshal(d.state)
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	})
	mux.HandleFunc("GET /dashboard/events", func(w http.ResponseWriter, r *http.Request) {
		if !d.authorized(w, r) {
			return
		}
		fl, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "no streaming here", http.StatusInternalServerError)
			return
		}
		ch := make(chan []byte, 4)
		d.mu.Lock()
		d.subs[ch] = struct{}{}
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			delete(d.subs, ch)
			d.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		fl.Flush()
		for {
			select {
			case raw := <-ch:
				if _, err := fmt.Fprintf(w, "data: %s\n\n", raw); err != nil {
					return
				}
				fl.Flush()
			case <-r.Context().Done():
				return
			case <-d.stop:
				return
			}
		}
	})
	mux.HandleFunc("GET /dashboard/chart/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !d.authorized(w, r) {
			return
		}
		name := strings.TrimSuffix(r.PathValue("name"), ".svg")
		svg, err := d.chart(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(svg)
	})
	return mux
}

// chart draws a chart's series as SVG.
func (d *dashboard) chart(name string) ([]byte, error) {
	d.mu.Lock()
	byName, ok := d.charts[name]
	if !ok {
		d.mu.Unlock()
		return nil, errors.New("no chart " + name)
	}
	names := slices.Sorted(maps.Keys(byName))
	// A common x: the union of the series' x, each series given at its
	// own x and left empty elsewhere.
	var xs []float64
	for _, n := range names {
		xs = append(xs, byName[n].x...)
	}
	slices.Sort(xs)
	xs = slices.Compact(xs)
	at := make(map[float64]int, len(xs))
	for i, x := range xs {
		at[x] = i
	}
	values := make([][]float64, len(names))
	for i, n := range names {
		s := byName[n]
		values[i] = make([]float64, len(xs))
		for k := range values[i] {
			values[i][k] = charts.GetNullValue()
		}
		for k, x := range s.x {
			values[i][at[x]] = s.y[k]
		}
	}
	d.mu.Unlock()
	const width, height = 640, 300
	p := charts.NewPainter(charts.PainterOptions{OutputFormat: charts.ChartOutputSVG, Width: width, Height: height})
	p.FilledRect(0, 0, width, height, charts.ColorWhite, charts.ColorWhite, 0)
	if len(xs) == 0 {
		p.Text("no points yet", width/2-40, height/2, 0, charts.FontStyle{FontSize: 14, FontColor: charts.ColorBlack})
		return p.Bytes()
	}
	labels := make([]string, len(xs))
	for i, x := range xs {
		labels[i] = strconv.Itoa(int(x)) // rounds (fl), cycles (il), seconds (the others): the chart's title says
		if name != "fl" && name != "il" {
			labels[i] += " s"
		}
	}
	opt := charts.LineChartOption{
		Padding:    charts.NewBox(12, 12, 16, 12),
		XAxis:      charts.XAxisOption{Labels: labels, LabelCount: min(len(xs), 8)},
		YAxis:      []charts.YAxisOption{{Min: charts.Ptr(0.0)}},
		Legend:     charts.LegendOption{SeriesNames: names, Offset: charts.OffsetStr{Left: charts.PositionRight, Top: "0"}},
		SeriesList: charts.NewSeriesListLine(values),
		Symbol:     charts.Symbol{Shape: charts.SymbolNone},
	}
	if len(xs) < 30 {
		opt.Symbol = charts.Symbol{}
	}
	if err := p.LineChart(opt); err != nil {
		return nil, err
	}
	b, err := p.Bytes()
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b), nil
}
