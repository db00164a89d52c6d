package federated

import (
	"fmt"
	"strings"
)

// Bounds of a model's size, as SEDNA_FL_INPUTS and SEDNA_FL_CLASSES take
// them; a Dataset's report beyond them is refused, not used to allocate.
const (
	maxInputs  = 1 << 24
	maxClasses = 1 << 16
)

// sizeSource is something that tells a new model's inputs, its classes, or
// both (0: it does not tell that one).
type sizeSource struct {
	Name            string
	Inputs, Classes int
}

// modelSize is the size of a new model and what told each half.
type modelSize struct {
	Inputs, Classes         int
	InputsFrom, ClassesFrom string
}

// sizeSources is everything that can tell the size of a new model (a
// pretrainedModel is the model: its size is its own).
type sizeSources struct {
	// Given are the sources the aggregation worker has at hand, strongest
	// first: SEDNA_FL_INPUTS and SEDNA_FL_CLASSES, the validation set, the
	// aggregationWorker.model's newest version. Each half of the size is
	// taken from the first that tells it.
	Given []sizeSource
	// Notes say why a source that might have told tells nothing (an
	// aggregationWorker.model without a version), for the error.
	Notes []string
	// Clients are the training workers; Reports the latest report of
	// each built-in one's Dataset, by role. A role that is there with nil
	// was heard from by a worker too old to report.
	Clients []client
	Reports map[string]*datasetReport
	// MinClients Datasets are enough past the deadline (PastDeadline):
	// a worker that is not heard from does not hold the job for ever.
	MinClients   int
	PastDeadline bool
}

// decideSize decides the size of a new model from its sources: a half the
// given sources tell is theirs; otherwise the training workers' Datasets
// tell it, once every built-in worker has reported a settled Dataset (or,
// past the deadline, MinClients have): inputs is their features, on which
// they must agree, classes their largest label plus one (at least 2).
// waiting, when not empty, says what the decision waits for. An error
// says why the size cannot be told.
func decideSize(s sizeSources) (size modelSize, waiting string, err error) {
	for _, g := range s.Given {
		if size.Inputs == 0 && g.Inputs > 0 {
			size.Inputs, size.InputsFrom = g.Inputs, g.Name
		}
		if size.Classes == 0 && g.Classes > 0 {
			size.Classes, size.ClassesFrom = g.Classes, g.Name
		}
	}
	if size.Inputs > 0 && size.Classes > 0 {
		return size, "", nil
	}
	var usable []client
	var pending, silent []string
	builtin := 0
	for _, c := range s.Clients {
		what := fmt.Sprintf("%s (Dataset %s on %s)", c.Role, c.Dataset, c.Node)
		if c.External {
			silent = append(silent, what+": runs its own program (a command), which reports no Dataset")
			continue
		}
		builtin++
		rep, heard := s.Reports[c.Role]
		switch {
		case !heard:
			pending = append(pending, what+": not heard from")
		case rep == nil:
			silent = append(silent, what+": its worker is of a version that does not report its Dataset")
		case rep.Rows == 0 && rep.Bad == 0:
			pending = append(pending, what+": no samples yet")
		case !rep.Settled:
			pending = append(pending, fmt.Sprintf("%s: being read (%d samples so far)", what, rep.Rows+rep.Bad))
		case rep.Rows <= 0:
			silent = append(silent, fmt.Sprintf("%s: none of its %d lines is label,f1,f2,... (a whole label, then numbers)", what, rep.Bad))
		case rep.Inputs <= 0 || rep.Classes <= 0:
			silent = append(silent, fmt.Sprintf("%s: %d samples reported without their features or labels", what, rep.Rows))
		case rep.Inputs > maxInputs:
			return modelSize{}, "", fmt.Errorf("%s: samples of %d features: at most %d", what, rep.Inputs, maxInputs)
		case rep.Classes > maxClasses:
			return modelSize{}, "", fmt.Errorf("%s: a label of %d: at most %d classes", what, rep.Classes-1, maxClasses)
		default:
			usable = append(usable, c)
		}
	}
	if size.Inputs == 0 && len(usable) > 1 {
		widths := map[int]bool{}
		var each []string
		for _, c := range usable {
			w := s.Reports[c.Role].Inputs
			widths[w] = true
			each = append(each, fmt.Sprintf("%s on %s (%s) has %d", c.Dataset, c.Node, c.Role, w))
		}
		if len(widths) > 1 {
			return modelSize{}, "", fmt.Errorf("the training workers' Datasets disagree on the number of features: %s; make them agree, or give %s (samples of another width are then skipped)",
				strings.Join(each, ", "), ParamInputs)
		}
	}
	need := min(max(s.MinClients, 1), builtin)
	switch {
	case len(pending) > 0 && !(s.PastDeadline && len(usable) >= need):
		return modelSize{}, strings.Join(pending, "; "), nil
	case len(usable) == 0:
		why := append(append([]string{}, s.Notes...), silent...)
		return modelSize{}, "", fmt.Errorf("the model's size is unknown: give %s and %s, a validation set (%s), a pretrainedModel, or Datasets of label,f1,f2,... lines to the training workers: %s",
			ParamInputs, ParamClasses, ParamValidation, strings.Join(why, "; "))
	}
	roles := make([]string, len(usable))
	inputs, classes := 0, 2
	for i, c := range usable {
		roles[i] = c.Role
		inputs = s.Reports[c.Role].Inputs
		classes = max(classes, s.Reports[c.Role].Classes)
	}
	from := "the Datasets of " + strings.Join(roles, ", ")
	if left := append(append([]string{}, pending...), silent...); len(left) > 0 {
		from += " (not of " + strings.Join(left, "; ") + ")"
	}
	if size.Inputs == 0 {
		size.Inputs, size.InputsFrom = inputs, from
	}
	if size.Classes == 0 {
		size.Classes, size.ClassesFrom = classes, from
	}
	return size, "", nil
}
