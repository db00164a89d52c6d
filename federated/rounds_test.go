package federated

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func rules() Rules {
	return Rules{Clients: []string{"train-0", "train-1", "train-2"}, MinClients: 2, Rounds: 3, Deadline: time.Minute}
}

func contribution(role string) Contribution {
	return Contribution{Role: role, Weights: []float32{1}, Samples: 10}
}

// A round closes at once with every client in, and at its deadline with
// the minimum; never before the deadline with fewer than all.
func TestRoundClosesWithAllOrAtTheDeadlineWithTheMinimum(t *testing.T) {
	c, err := NewCoordinator(rules(), State{Run: 7})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	if r := c.Begin(t0); r != 1 {
		t.Fatalf("first round %d", r)
	}
	if v := c.Offer(7, 1, contribution("train-0")); v != Accepted {
		t.Fatalf("verdict %v", v)
	}
	if c.Ready(t0.Add(time.Hour)) {
		t.Fatal("ready with 1 of a minimum of 2, past the deadline")
	}
	if v := c.Offer(7, 1, contribution("train-1")); v != Accepted {
		t.Fatalf("verdict %v", v)
	}
	if c.Ready(t0.Add(59 * time.Second)) {
		t.Fatal("ready before the deadline without every client")
	}
	if !c.Ready(t0.Add(time.Minute)) {
		t.Fatal("not ready at the deadline with the minimum")
	}
	rec := c.Close(t0.Add(time.Minute), []byte("g2"), nil, Record{Accuracy: -1})
	if rec.Round != 1 || rec.Participants != 2 || rec.Clients != 3 || len(rec.Missing) != 1 || rec.Missing[0] != "train-2" || rec.Seconds != 60 {
		t.Fatalf("record %+v", rec)
	}
	if c.State().Round != 2 || string(c.State().Global) != "g2" {
		t.Fatalf("state %+v", c.State())
	}
	c.Begin(t0.Add(2 * time.Minute))
	for _, r := range []string{"train-0", "train-1", "train-2"} {
		c.Offer(7, 2, contribution(r))
	}
	if !c.Ready(t0.Add(2 * time.Minute)) {
		t.Fatal("not ready with every client in")
	}
}

// Updates for an older round or run are ignored and counted; duplicates,
// unknown roles and rounds not started are refused.
func TestLateAndStrayUpdates(t *testing.T) {
	c, _ := NewCoordinator(rules(), State{Run: 7})
	t0 := time.Unix(1000, 0)
	c.Begin(t0)
	c.Offer(7, 1, contribution("train-0"))
	c.Offer(7, 1, contribution("train-1"))
	c.Close(t0, nil, nil, Record{Accuracy: -1})
	c.Begin(t0)
	cases := []struct {
		run   uint64
		round int64
		role  string
		want  Verdict
	}{
		{7, 1, "train-2", Late},      // the straggler of round 1
		{6, 2, "train-0", Late},      // a run before the job was re-applied
		{7, 3, "train-0", Early},     // a round that has not begun
		{7, 2, "intruder", Unknown},  // not a worker of the job
		{7, 2, "train-0", Accepted},  // on time
		{7, 2, "train-0", Duplicate}, // again
	}
	for _, tc := range cases {
		if v := c.Offer(tc.run, tc.round, contribution(tc.role)); v != tc.want {
			t.Errorf("run %d round %d %s: %v, want %v", tc.run, tc.round, tc.role, v, tc.want)
		}
	}
	if c.State().Late != 2 {
		t.Errorf("%d late updates counted, want 2", c.State().Late)
	}
	c.Offer(7, 2, contribution("train-1"))
	if rec := c.Close(t0.Add(time.Minute), nil, nil, Record{Accuracy: -1}); rec.Late != 2 {
		t.Errorf("round record counts %d late updates, want 2", rec.Late)
	}
}

// The job ends after exit_round rounds, at a target accuracy, or after
// patience rounds without a better one, whichever comes first.
func TestExitConditions(t *testing.T) {
	run := func(r Rules, accuracies ...float64) (State, int64) {
		c, _ := NewCoordinator(r, State{Run: 1})
		t0 := time.Unix(0, 0)
		for i, a := range accuracies {
			c.Begin(t0)
			for _, role := range r.Clients {
				c.Offer(1, int64(i+1), contribution(role))
			}
			c.Close(t0, nil, nil, Record{Accuracy: a})
			if c.State().Done {
				return c.State(), int64(i + 1)
			}
		}
		return c.State(), 0
	}
	r := rules()
	if st, at := run(r, 0.5, 0.6, 0.7, 0.8); at != 3 || !strings.Contains(st.Reason, "exit_round") {
		t.Errorf("rounds: done at %d (%s), want 3", at, st.Reason)
	}
	r.Rounds, r.Target = 100, 0.9
	if st, at := run(r, 0.5, 0.91, 0.95); at != 2 || !strings.Contains(st.Reason, "target") {
		t.Errorf("target: done at %d (%s), want 2", at, st.Reason)
	}
	r.Target, r.Patience = 0, 2
	if st, at := run(r, 0.5, 0.7, 0.69, 0.7, 0.6); at != 4 || st.Best != 0.7 || st.BestRound != 2 || !strings.Contains(st.Reason, "no better") {
		t.Errorf("patience: done at %d (%+v), want 4 with best 0.7 at round 2", at, st)
	}
	// Without a validation set (accuracy -1) patience never triggers.
	r.Rounds = 5
	if _, at := run(r, -1, -1, -1, -1, -1); at != 5 {
		t.Errorf("no validation: done at %d, want 5", at)
	}
}

// A coordinator resumed from a stored state goes on at its round.
func TestResumeFromState(t *testing.T) {
	c, _ := NewCoordinator(rules(), State{Run: 3, Round: 2, Global: []byte("g")})
	if r := c.Begin(time.Now()); r != 2 {
		t.Fatalf("resumed at round %d, want 2", r)
	}
	done, _ := NewCoordinator(rules(), State{Run: 3, Round: 3, Done: true})
	if done.Begin(time.Now()); done.Ready(time.Now().Add(time.Hour)) || done.Offer(3, 3, contribution("train-0")) != Late {
		t.Fatal("a finished job takes updates")
	}
}

func TestRulesAreChecked(t *testing.T) {
	for _, r := range []Rules{
		{},
		{Clients: []string{"a"}, MinClients: 2, Rounds: 1, Deadline: time.Second},
		{Clients: []string{"a"}, MinClients: 1, Rounds: 0, Deadline: time.Second},
		{Clients: []string{"a"}, MinClients: 1, Rounds: 1},
	} {
		if _, err := NewCoordinator(r, State{}); err == nil {
			t.Errorf("rules %+v accepted", r)
		}
	}
}

// The state keeps the newest rounds' records only.
func TestHistoryIsBounded(t *testing.T) {
	r := rules()
	r.Rounds = maxHistory + 10
	c, _ := NewCoordinator(r, State{Run: 1})
	for i := range r.Rounds {
		c.Begin(time.Unix(0, 0))
		c.Offer(1, i+1, contribution("train-0"))
		c.Close(time.Unix(0, 0), nil, nil, Record{Accuracy: -1})
	}
	h := c.State().History
	if len(h) != maxHistory || h[0].Round != 11 || !c.State().Done {
		t.Fatalf("%d records from round %d, done %v", len(h), h[0].Round, c.State().Done)
	}
	if c.Has("train-0") {
		t.Error("a closed round still has an update")
	}
}

// Next is the rounds' policy, step by step: a round begins and waits for
// its deadline; with every client in it closes at once; past its deadline
// without the minimum it says so once, asks its missing clients again
// once per deadline's length and stays open until it has the minimum;
// after the last round the job is done.
func TestNextStepsThroughTheRounds(t *testing.T) {
	r := rules()
	r.Rounds = 2
	c, err := NewCoordinator(r, State{Run: 7})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		name  string
		at    time.Duration
		offer []string // before the step, for the round in progress
		want  Step
	}{
		{"round 1 begins", 0, nil, Step{Begin: true, Round: 1, Wait: at(time.Minute)}},
		{"an update before the deadline: wait on", 10 * time.Second, []string{"train-0"}, Step{Round: 1, Wait: at(time.Minute)}},
		{"the deadline with 1 of 2: overdue, ask the missing", time.Minute, nil,
			Step{Round: 1, Overdue: true, Ask: []string{"train-1", "train-2"}, Wait: at(2 * time.Minute)}},
		{"before the next ask: wait", 90 * time.Second, nil, Step{Round: 1, Wait: at(2 * time.Minute)}},
		{"a deadline's length later: ask again, not overdue again", 2 * time.Minute, nil,
			Step{Round: 1, Ask: []string{"train-1", "train-2"}, Wait: at(3 * time.Minute)}},
		{"the minimum: close", 150 * time.Second, []string{"train-2"}, Step{Close: true, Round: 1}},
	}
	for _, s := range steps {
		for _, role := range s.offer {
			if v := c.Offer(7, c.State().Round, contribution(role)); v != Accepted {
				t.Fatalf("%s: %s: %v", s.name, role, v)
			}
		}
		if got := c.Next(at(s.at)); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: %+v, want %+v", s.name, got, s.want)
		}
	}
	c.Close(at(150*time.Second), nil, nil, Record{Accuracy: -1})
	if got, want := c.Next(at(3*time.Minute)), (Step{Begin: true, Round: 2, Wait: at(4 * time.Minute)}); !reflect.DeepEqual(got, want) {
		t.Fatalf("round 2: %+v, want %+v", got, want)
	}
	for _, role := range r.Clients {
		c.Offer(7, 2, contribution(role))
	}
	if got := c.Next(at(3*time.Minute + time.Second)); !got.Close {
		t.Fatalf("every client in: %+v", got)
	}
	c.Close(at(3*time.Minute+time.Second), nil, nil, Record{Accuracy: -1})
	if got := c.Next(at(5 * time.Minute)); !got.Done || got.Round != 2 {
		t.Fatalf("after the last round: %+v", got)
	}
}
