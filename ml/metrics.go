package ml

import (
	"fmt"
	"math"
)

// Argmax returns, for each row of p (classes wide), the index of its
// largest value; ties go to the lowest index.
func Argmax(p []float32, classes int) []int {
	if classes < 1 {
		return nil
	}
	out := make([]int, len(p)/classes)
	for r := range out {
		row := p[r*classes : r*classes+classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[r] = best
	}
	return out
}

// Accuracy returns the fraction of predictions equal to the truth.
func Accuracy(truth, pred []int) (float64, error) {
	if len(truth) == 0 || len(truth) != len(pred) {
		return 0, invalid("accuracy", "%d labels, %d predictions", len(truth), len(pred))
	}
	hit := 0
	for i, t := range truth {
		if pred[i] == t {
			hit++
		}
	}
	return float64(hit) / float64(len(truth)), nil
}

// LogLoss returns the mean cross-entropy, in nats, of the probabilities p
// (rows × classes, row-major) against the labels; probabilities are clipped
// to [1e-15, 1] as is usual.
func LogLoss(truth []int, p []float32, classes int) (float64, error) {
	if classes < 2 || len(truth) == 0 || len(p) != len(truth)*classes {
		return 0, invalid("log loss", "%d labels, %d probabilities, %d classes", len(truth), len(p), classes)
	}
	var sum float64
	for i, t := range truth {
		if t < 0 || t >= classes {
			return 0, invalid("log loss", "label %d of row %d is not in [0, %d)", t, i, classes)
		}
		v := float64(p[i*classes+t])
		if math.IsNaN(v) {
			return 0, invalid("log loss", "probability of row %d is NaN", i)
		}
		sum -= math.Log(min(max(v, 1e-15), 1))
	}
	return sum / float64(len(truth)), nil
}

// Confusion is a confusion matrix: Count(t, p) samples of true class t were
// predicted as class p.
type Confusion struct {
	classes int
	counts  []int // classes×classes, row = truth
}

// NewConfusion counts the pairs of truth and prediction over classes classes.
func NewConfusion(truth, pred []int, classes int) (*Confusion, error) {
	if classes < 1 {
		return nil, invalid("confusion", "%d classes", classes)
	}
	if len(truth) == 0 || len(truth) != len(pred) {
		return nil, invalid("confusion", "%d labels, %d predictions", len(truth), len(pred))
	}
	c := &Confusion{classes: classes, counts: make([]int, classes*classes)}
	for i, t := range truth {
		p := pred[i]
		if t < 0 || t >= classes || p < 0 || p >= classes {
			return nil, invalid("confusion", "pair %d (%d, %d) is not in [0, %d)", i, t, p, classes)
		}
		c.counts[t*classes+p]++
	}
	return c, nil
}

// Classes returns the number of classes.
func (c *Confusion) Classes() int { return c.classes }

// Count returns how many samples of true class truth were predicted as pred.
func (c *Confusion) Count(truth, pred int) int { return c.counts[truth*c.classes+pred] }

// Total returns the number of samples counted.
func (c *Confusion) Total() int {
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

// Accuracy returns the fraction of samples on the diagonal.
func (c *Confusion) Accuracy() float64 {
	hit := 0
	for k := 0; k < c.classes; k++ {
		hit += c.Count(k, k)
	}
	return float64(hit) / float64(c.Total())
}

// Scores are precision, recall and F1 for one class or averaged.
type Scores struct {
	Precision, Recall, F1 float64
}

// PerClass returns the scores of each class. A class never predicted has
// precision 0; a class absent from the truth has recall 0 (scikit-learn's
// convention for zero division).
func (c *Confusion) PerClass() []Scores {
	out := make([]Scores, c.classes)
	for k := range out {
		tp, fp, fn := c.outcomes(k)
		out[k] = scores(tp, fp, fn)
	}
	return out
}

// Micro returns the scores of the pooled true positives, false positives
// and false negatives of all classes. For single-label data all three equal
// the accuracy.
func (c *Confusion) Micro() Scores {
	var tp, fp, fn int
	for k := 0; k < c.classes; k++ {
		a, b, d := c.outcomes(k)
		tp, fp, fn = tp+a, fp+b, fn+d
	}
	return scores(tp, fp, fn)
}

// Macro returns the unweighted mean of the per-class scores (F1 is the mean
// of the per-class F1s, as in scikit-learn).
func (c *Confusion) Macro() Scores {
	var m Scores
	for _, s := range c.PerClass() {
		m.Precision += s.Precision
		m.Recall += s.Recall
		m.F1 += s.F1
	}
	k := float64(c.classes)
	return Scores{m.Precision / k, m.Recall / k, m.F1 / k}
}

func (c *Confusion) outcomes(k int) (tp, fp, fn int) {
	tp = c.Count(k, k)
	for j := 0; j < c.classes; j++ {
		if j != k {
			fp += c.Count(j, k)
			fn += c.Count(k, j)
		}
	}
	return tp, fp, fn
}

func scores(tp, fp, fn int) Scores {
	var s Scores
	if tp+fp > 0 {
		s.Precision = float64(tp) / float64(tp+fp)
	}
	if tp+fn > 0 {
		s.Recall = float64(tp) / float64(tp+fn)
	}
	if s.Precision+s.Recall > 0 {
		s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	return s
}

// String renders the matrix, one row per true class.
func (c *Confusion) String() string {
	s := ""
	for t := 0; t < c.classes; t++ {
		for p := 0; p < c.classes; p++ {
			s += fmt.Sprintf("%6d", c.Count(t, p))
		}
		s += "\n"
	}
	return s
}

// Evaluation is what Evaluate measures.
type Evaluation struct {
	Accuracy  float64
	LogLoss   float64
	Confusion *Confusion
}

// Evaluate predicts the rows of x with m and scores them against y.
func Evaluate(m Predictor, x []float32, y []int) (Evaluation, error) {
	p, err := m.PredictProba(x)
	if err != nil {
		return Evaluation{}, err
	}
	classes := m.Classes()
	if len(p) != len(y)*classes {
		return Evaluation{}, invalid("evaluate", "%d rows, %d labels", len(p)/classes, len(y))
	}
	c, err := NewConfusion(y, Argmax(p, classes), classes)
	if err != nil {
		return Evaluation{}, err
	}
	ll, err := LogLoss(y, p, classes)
	if err != nil {
		return Evaluation{}, err
	}
	return Evaluation{Accuracy: c.Accuracy(), LogLoss: ll, Confusion: c}, nil
}
