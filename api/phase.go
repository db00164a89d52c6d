package api

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Phases a resource's status shows beyond the condition types: a job whose
// worker keeps failing is in CrashLoopBackOff (as kubectl shows a pod), a
// Dataset its node has reported and a Model with a version are Ready.
const (
	PhaseCrashLoop = "CrashLoopBackOff"
	PhaseReady     = "Ready"
)

// Worker phases as the supervisor reports them (workers.Phase* mirror
// these; api holds them so the status can be derived without it).
const (
	WorkerPending    = "Pending"
	WorkerRunning    = "Running"
	WorkerRestarting = "Restarting"
	WorkerCrashLoop  = "CrashLoopBackOff"
	WorkerSucceeded  = "Succeeded"
	WorkerFailed     = "Failed"
	WorkerStopped    = "Stopped"
)

// CrashLoopFailures is how many failures in a row, without a run long
// enough to count as stable, make a worker crash-looping.
const CrashLoopFailures = 2

// Observed is what the control plane knows of a resource beyond its
// status: what it still waits for, the workers it places, and which of
// their nodes are offline.
type Observed struct {
	Kind string
	// Waits names what must exist before the resource can run: Models and
	// Datasets it names, nodes that never joined, a model version.
	Waits []string
	// Desired are the workers the resource places (none for a Dataset or
	// a Model).
	Desired []Worker
	// Offline lists nodes known to be offline now.
	Offline []string
	// Reported is set for a Dataset once its node has reported it;
	// Problem is why the node cannot read its file.
	Reported bool
	Problem  string
	// Describe, if set, is the message of a Ready Dataset or Model.
	Describe string
	// Deciders are the roles whose workers decide a job (its paradigm's
	// view): it completes when they all succeeded, and runs once they all
	// run, whatever the others do. Empty: every worker decides, and all
	// must run.
	Deciders []string
}

// Settle derives the phase, the conditions and the worker counts from the
// observation and the workers' reported statuses. It is a pure function of
// s and o: the same inputs give the same status. A condition that no
// longer holds is set False (never Running=True beside Completed=True);
// a job is Running only while its workers run.
func (s *Status) Settle(o Observed, now time.Time) {
	s.Pending = o.Waits
	s.DesiredWorkers = len(o.Desired)
	s.ReadyWorkers, s.Restarts = 0, 0
	for _, w := range s.Workers {
		s.Restarts += w.Restarts
	}
	waits := "waiting for " + strings.Join(o.Waits, ", ")
	if len(o.Desired) == 0 {
		if len(o.Waits) > 0 {
			s.become(PhaseAndCondition{ConditionPending, "Waiting", waits}, now)
			return
		}
		s.settleResource(o, now)
		return
	}
	// Each desired worker, as its node reports it.
	type seen struct {
		w      Worker
		st     WorkerStatus
		ok     bool
		decide bool // its end decides the job's end
	}
	var all []seen
	for _, w := range o.Desired {
		i := slices.IndexFunc(s.Workers, func(ws WorkerStatus) bool { return ws.Role == w.Role && ws.Node == w.Node })
		x := seen{w: w, decide: len(o.Deciders) == 0 || slices.Contains(o.Deciders, w.Role)}
		if i >= 0 {
			x.st, x.ok = s.Workers[i], true
		}
		all = append(all, x)
	}
	var failed, looping, waiting, saying []string
	done, deciding, runningDeciders := 0, 0, 0
	for _, x := range all {
		name := fmt.Sprintf("worker %s on %s", x.w.Role, x.w.Node)
		if x.decide {
			deciding++
		}
		switch {
		case !x.ok:
			why := "no report yet"
			if slices.Contains(o.Offline, x.w.Node) {
				why = "node offline"
			}
			waiting = append(waiting, fmt.Sprintf("%s (%s)", name, why))
		case x.st.Phase == WorkerFailed:
			if x.decide {
				failed = append(failed, withError(name+" failed", x.st))
			}
		case x.st.Phase == WorkerSucceeded:
			if x.decide {
				done++
			}
		case x.st.CrashLooping():
			looping = append(looping, withError(fmt.Sprintf("%s restarted %d times", name, x.st.Restarts), x.st))
		case x.st.Phase == WorkerRunning:
			s.ReadyWorkers++
			if x.st.Message != "" {
				saying = append(saying, name+": "+x.st.Message)
			}
			if x.decide {
				runningDeciders++
			}
		default: // Pending, Restarting, Stopped
			why := strings.ToLower(x.st.Phase)
			if x.st.Message != "" {
				why += ": " + x.st.Message
			}
			waiting = append(waiting, fmt.Sprintf("%s (%s)", name, why))
		}
	}
	// An end is an end: what the job waits for now (a Dataset deleted
	// after it completed) does not make it Pending again.
	switch {
	case len(failed) > 0:
		s.become(PhaseAndCondition{ConditionFailed, "WorkerFailed", strings.Join(failed, "; ")}, now)
	case deciding > 0 && done == deciding:
		s.become(PhaseAndCondition{ConditionCompleted, "WorkersSucceeded", ""}, now)
		if s.CompletionTime == nil {
			t := now
			s.CompletionTime = &t
		}
	case s.Stage != nil && s.Stage.Done && len(looping) == 0:
		// A learning job whose stop condition held: its cycles ended (its
		// inference worker serves on with the last model).
		s.become(PhaseAndCondition{ConditionCompleted, "StopConditionMet", s.Stage.Reason}, now)
		if s.CompletionTime == nil {
			t := now
			s.CompletionTime = &t
		}
	case len(o.Waits) > 0:
		// Its workers may run (started before, or waiting themselves):
		// the job cannot do its work without what it names.
		if s.ReadyWorkers > 0 {
			waits += fmt.Sprintf(" (%d of %d workers running meanwhile)", s.ReadyWorkers, s.DesiredWorkers)
		}
		s.become(PhaseAndCondition{ConditionPending, "Waiting", waits}, now)
	case len(looping) > 0:
		s.become(PhaseAndCondition{PhaseCrashLoop, "CrashLoopBackOff", strings.Join(looping, "; ")}, now)
	case len(waiting) == 0 || len(o.Deciders) > 0 && runningDeciders == deciding && runningDeciders > 0:
		msg := fmt.Sprintf("%d of %d workers running", s.ReadyWorkers, s.DesiredWorkers)
		if len(waiting) > 0 {
			msg += "; not running: " + strings.Join(waiting, ", ")
		}
		if len(saying) > 0 {
			msg += "; " + strings.Join(saying, "; ")
		}
		s.become(PhaseAndCondition{ConditionRunning, "WorkersRunning", msg}, now)
	default:
		s.become(PhaseAndCondition{ConditionPending, "WorkersStarting", "waiting for " + strings.Join(waiting, ", ")}, now)
	}
}

// settleResource settles a Dataset or a Model: Ready once its node has
// reported it (a Dataset) or it has a version (a Model, whose lack of one
// is a wait).
func (s *Status) settleResource(o Observed, now time.Time) {
	if o.Kind == KindDataset && o.Problem != "" {
		s.become(PhaseAndCondition{ConditionPending, "FileNotRead", o.Problem}, now)
		return
	}
	if o.Kind == KindDataset && !o.Reported {
		s.become(PhaseAndCondition{ConditionPending, "WaitingForNode", "waiting for its node to report the dataset"}, now)
		return
	}
	s.become(PhaseAndCondition{PhaseReady, "Ready", o.Describe}, now)
}

// PhaseAndCondition is a phase and the reason and message of the
// condition that says why.
type PhaseAndCondition struct {
	Phase, Reason, Message string
}

// phaseConditions are the condition types of which at most one holds,
// the one of the phase (in CrashLoopBackOff none does: Running is False
// with the reason).
var phaseConditions = []string{ConditionPending, ConditionRunning, ConditionCompleted, ConditionFailed, PhaseReady}

// become moves to a phase: its condition True with the reason and
// message, the other phase conditions False (those never set stay
// absent).
func (s *Status) become(p PhaseAndCondition, now time.Time) {
	s.Phase = p.Phase
	for _, typ := range phaseConditions {
		if typ == p.Phase {
			s.SetCondition(typ, StatusTrue, p.Reason, p.Message, now)
			continue
		}
		if _, had := s.Condition(typ); had || typ == ConditionRunning && p.Phase == PhaseCrashLoop {
			s.SetCondition(typ, StatusFalse, p.Reason, p.Message, now)
		}
	}
}

func withError(s string, st WorkerStatus) string {
	if st.ExitCode != nil {
		s += fmt.Sprintf(" (exit %d)", *st.ExitCode)
	}
	if e := st.LastError; e != "" {
		s += ": " + e
	} else if st.Message != "" {
		s += ": " + st.Message
	}
	return s
}

// CrashLooping reports whether the worker failed CrashLoopFailures times
// in a row without a stable run in between.
func (w WorkerStatus) CrashLooping() bool {
	return w.Phase == WorkerCrashLoop || w.Failures >= CrashLoopFailures && w.Phase != WorkerSucceeded && w.Phase != WorkerStopped
}
