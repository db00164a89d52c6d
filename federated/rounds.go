package federated

import (
	"fmt"
	"slices"
	"time"
)

// Rules are what decide a federated job's rounds.
type Rules struct {
	// Clients are the training workers' roles ("train-0", ...).
	Clients []string
	// MinClients is the number of updates a round needs to close at its
	// deadline; with every client in, it closes at once.
	MinClients int
	// Rounds is the number of rounds to run (Sedna's exit_round).
	Rounds int64
	// Deadline is how long a round waits for its stragglers.
	Deadline time.Duration
	// Target stops the job once the validation accuracy reaches it (0:
	// never).
	Target float64
	// Patience stops the job after this many rounds without a better
	// validation accuracy (0: never).
	Patience int
}

// State is what a federated job keeps between rounds (and across restarts
// of the cloud manager).
type State struct {
	Run       uint64    `msgpack:"run"`
	Gen       uint64    `msgpack:"gen"`   // the job's generation the run began with
	Round     int64     `msgpack:"round"` // the round in progress, or the last one when Done
	Global    []byte    `msgpack:"global"`
	AggState  []float32 `msgpack:"aggState,omitempty"`
	Best      float64   `msgpack:"best"`
	BestRound int64     `msgpack:"bestRound"`
	Stale     int       `msgpack:"stale"`
	Done      bool      `msgpack:"done"`
	Reason    string    `msgpack:"reason,omitempty"`
	Late      int64     `msgpack:"late"`
	// Registered: the final model is in the registry; Announced: the
	// workers were told the job is over.
	Registered bool `msgpack:"registered,omitempty"`
	Announced  bool `msgpack:"announced,omitempty"`
	// Model names the model the run trains (architecture, size, or the
	// pretrained model): a job applied again with another starts afresh.
	Model string `msgpack:"model,omitempty"`
	// Saves counts the times the state was stored; the stored Global and
	// AggState are blobs of that save, not in the state's own record.
	Saves   uint64   `msgpack:"saves,omitempty"`
	History []Record `msgpack:"history"`
}

// Record is what one round did.
type Record struct {
	Round        int64    `msgpack:"r" json:"round"`
	Participants int      `msgpack:"p" json:"participants"`
	Clients      int      `msgpack:"c" json:"clients"`
	Samples      int64    `msgpack:"k" json:"samples"`
	Accuracy     float64  `msgpack:"a" json:"accuracy"` // on the validation set; -1 without one
	Loss         float64  `msgpack:"l" json:"loss"`     // validation loss, or the clients' mean training loss without a validation set
	TrainLoss    float64  `msgpack:"tl" json:"trainLoss"`
	Late         int64    `msgpack:"lt" json:"late"` // updates for an older round that arrived during this one
	BytesUp      int64    `msgpack:"bu" json:"bytesUp"`
	BytesDown    int64    `msgpack:"bd" json:"bytesDown"`
	Seconds      float64  `msgpack:"s" json:"seconds"`
	TrainSeconds float64  `msgpack:"ts" json:"trainSeconds"` // the slowest participant's training
	Missing      []string `msgpack:"m,omitempty" json:"missing,omitempty"`
	Excluded     string   `msgpack:"x,omitempty" json:"excluded,omitempty"`
}

// maxHistory bounds the rounds a State keeps records of (the newest).
const maxHistory = 1000

// Verdict is what became of an update.
type Verdict int

// Verdicts of Coordinator.Offer.
const (
	Accepted  Verdict = iota // counted in this round
	Late                     // for an older round (or run): ignored and counted
	Duplicate                // this client's update for this round is in already
	Unknown                  // from a role that is not a training worker of the job
	Early                    // for a round that has not started: a bug or a forgery
)

func (v Verdict) String() string {
	return [...]string{"accepted", "late", "duplicate", "unknown", "early"}[v]
}

// Contribution is one client's update for a round.
type Contribution struct {
	Role    string
	Weights []float32
	Samples int64
	Loss    float64
	Train   float64 // seconds
	Bytes   int64
}

// Coordinator is the pure logic of a federated job's rounds: it takes
// updates and the time, and says when a round closes and whether the job
// is over. It does no I/O; the aggregation worker drives it.
type Coordinator struct {
	rules    Rules
	st       State
	deadline time.Time
	started  time.Time
	got      map[string]Contribution
	late     int64
	// overdue: the open round was said to be past its deadline without
	// its minimum; asked: when its missing clients were last asked again.
	overdue bool
	asked   time.Time
}

// NewCoordinator resumes a job from st (a fresh job has a zero State with
// a Run and the initial model as Global).
func NewCoordinator(rules Rules, st State) (*Coordinator, error) {
	if len(rules.Clients) == 0 || rules.MinClients < 1 || rules.MinClients > len(rules.Clients) || rules.Rounds < 1 || rules.Deadline <= 0 {
		return nil, fmt.Errorf("federated: rules: %d clients, min %d, %d rounds, deadline %v", len(rules.Clients), rules.MinClients, rules.Rounds, rules.Deadline)
	}
	return &Coordinator{rules: rules, st: st, got: map[string]Contribution{}}, nil
}

// State returns the job's state (its slices are shared: do not change
// them).
func (c *Coordinator) State() State { return c.st }

// Begin starts the next round at now, unless the job is done or a round
// is open; it returns the round in progress.
func (c *Coordinator) Begin(now time.Time) int64 {
	if c.st.Done {
		return c.st.Round
	}
	if c.started.IsZero() {
		if c.st.Round == 0 {
			c.st.Round = 1
		}
		c.started, c.deadline = now, now.Add(c.rules.Deadline)
		clear(c.got)
		c.late = 0
		c.overdue, c.asked = false, time.Time{}
	}
	return c.st.Round
}

// Step is what the aggregation does next (Coordinator.Next).
type Step struct {
	// Done: the job is over (Close decided it); nothing more to do.
	Done bool
	// Close: the open round closes now (Close, then Next again).
	Close bool
	// Begin: a round began; its global model goes to every client.
	Begin bool
	// Round is the round in progress.
	Round int64
	// Overdue: the round is past its deadline without its minimum, said
	// once per round.
	Overdue bool
	// Ask are the clients to send the round's global again: past the
	// deadline without the minimum, once per deadline's length (a global
	// or an update lost on the way is sent again).
	Ask []string
	// Wait is when to call Next again if no update comes first.
	Wait time.Time
}

// Next says what the aggregation does at now: the whole policy of a
// job's rounds, which the aggregation worker and the deterministic
// simulator both follow. A round stays open past its deadline until it
// has its minimum (checked on every update).
func (c *Coordinator) Next(now time.Time) Step {
	if c.st.Done {
		return Step{Done: true, Round: c.st.Round}
	}
	if c.Ready(now) {
		return Step{Close: true, Round: c.st.Round}
	}
	if c.started.IsZero() {
		round := c.Begin(now)
		return Step{Begin: true, Round: round, Wait: c.deadline}
	}
	s := Step{Round: c.st.Round, Wait: c.deadline}
	if now.Before(c.deadline) {
		return s
	}
	if !c.overdue {
		c.overdue, s.Overdue = true, true
	}
	if c.asked.IsZero() || now.Sub(c.asked) >= c.rules.Deadline {
		c.asked = now
		_, _, s.Ask = c.Waiting()
	}
	s.Wait = c.asked.Add(c.rules.Deadline)
	return s
}

// Deadline is when the open round stops waiting for all its clients.
func (c *Coordinator) Deadline() time.Time { return c.deadline }

// Offer takes a client's update for a round of a run.
func (c *Coordinator) Offer(run uint64, round int64, u Contribution) Verdict {
	if !slices.Contains(c.rules.Clients, u.Role) {
		return Unknown
	}
	if run == c.st.Run && round > c.st.Round {
		return Early
	}
	if run != c.st.Run || round < c.st.Round || c.st.Done || c.started.IsZero() {
		c.late++
		c.st.Late++
		return Late
	}
	if _, ok := c.got[u.Role]; ok {
		return Duplicate
	}
	c.got[u.Role] = u
	return Accepted
}

// Has reports whether the open round has role's update.
func (c *Coordinator) Has(role string) bool {
	_, ok := c.got[role]
	return ok
}

// Ready reports whether the open round closes now: every client is in, or
// the deadline has passed with at least the minimum.
func (c *Coordinator) Ready(now time.Time) bool {
	if c.started.IsZero() || c.st.Done {
		return false
	}
	n := len(c.got)
	return n == len(c.rules.Clients) || (!now.Before(c.deadline) && n >= c.rules.MinClients)
}

// Waiting says whom the open round waits for.
func (c *Coordinator) Waiting() (have, need int, missing []string) {
	for _, r := range c.rules.Clients {
		if _, ok := c.got[r]; !ok {
			missing = append(missing, r)
		}
	}
	return len(c.got), c.rules.MinClients, missing
}

// Contributions are the open round's updates, in the clients' order.
func (c *Coordinator) Contributions() []Contribution {
	out := make([]Contribution, 0, len(c.got))
	for _, r := range c.rules.Clients {
		if u, ok := c.got[r]; ok {
			out = append(out, u)
		}
	}
	return out
}

// Close ends the open round with its aggregate (global, the model's
// bytes; aggState, the aggregator's) and its validation accuracy (negative
// without a validation set), and decides whether the job is over. It
// fills in the record's round, participants, late count and duration.
func (c *Coordinator) Close(now time.Time, global []byte, aggState []float32, rec Record) Record {
	rec.Round = c.st.Round
	rec.Participants = len(c.got)
	rec.Clients = len(c.rules.Clients)
	rec.Late = c.late
	rec.Seconds = now.Sub(c.started).Seconds()
	_, _, rec.Missing = c.Waiting()
	c.st.Global, c.st.AggState = global, aggState
	c.st.History = append(c.st.History, rec)
	if n := len(c.st.History); n > maxHistory {
		c.st.History = append([]Record(nil), c.st.History[n-maxHistory:]...)
	}
	if rec.Accuracy >= 0 {
		if rec.Accuracy > c.st.Best || c.st.BestRound == 0 {
			c.st.Best, c.st.BestRound, c.st.Stale = rec.Accuracy, rec.Round, 0
		} else {
			c.st.Stale++
		}
	}
	switch {
	case c.rules.Target > 0 && rec.Accuracy >= c.rules.Target:
		c.st.Done, c.st.Reason = true, fmt.Sprintf("validation accuracy %.4f reached the target %.4f", rec.Accuracy, c.rules.Target)
	case c.rules.Patience > 0 && c.st.Stale >= c.rules.Patience:
		c.st.Done, c.st.Reason = true, fmt.Sprintf("no better validation accuracy for %d rounds (best %.4f at round %d)", c.st.Stale, c.st.Best, c.st.BestRound)
	case c.st.Round >= c.rules.Rounds:
		c.st.Done, c.st.Reason = true, fmt.Sprintf("%d rounds done (exit_round)", c.st.Round)
	default:
		c.st.Round++
	}
	c.started, c.deadline = time.Time{}, time.Time{}
	clear(c.got)
	c.late = 0
	return rec
}

// RoundMetrics are the numbers a job's status shows after a round (round
// and rounds make its progress): what the aggregation worker reports.
func RoundMetrics(rec Record, st State, rounds int64) map[string]float64 {
	m := map[string]float64{
		"round": float64(rec.Round), "rounds": float64(rounds), "participants": float64(rec.Participants),
		"clients": float64(rec.Clients), "samples": float64(rec.Samples), "trainLoss": rec.TrainLoss,
		"lateUpdates": float64(st.Late), "bytesUp": float64(rec.BytesUp), "bytesDown": float64(rec.BytesDown),
		"roundSeconds": rec.Seconds, "overheadSeconds": max(rec.Seconds-rec.TrainSeconds, 0),
	}
	if rec.Accuracy >= 0 {
		m["accuracy"], m["loss"], m["bestAccuracy"] = rec.Accuracy, rec.Loss, st.Best
	}
	return m
}
