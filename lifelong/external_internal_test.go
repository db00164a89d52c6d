package lifelong

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/paradigm"
)

// csvData is a node's Data of one csv Dataset: its lines, the first a
// header.
type csvData struct {
	paradigm.SamplesFunc
	header []string
}

func (d csvData) Columns(string, string) ([]string, error) { return d.header, nil }

func newCSVData(lines ...string) csvData {
	return csvData{SamplesFunc: func(_, _ string, _ uint64, fn func(uint64, []byte) error) error {
		for i, l := range lines {
			if err := fn(uint64(i), []byte(l)); err != nil {
				return err
			}
		}
		return nil
	}, header: strings.Split(lines[0], ",")}
}

func example(attr string, label int, xs ...float32) incremental.Example {
	data := make([]byte, 0, 4*len(xs))
	for _, v := range xs {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	return incremental.Example{Key: attr, DType: jointinference.DTypeF32, Shape: []int{len(xs)}, Data: data, Label: label, Attr: attr}
}

// An external worker's data set is a CSV of the Dataset's share (as the
// built-in learner reads it: named columns picked, unparsed lines left
// out) and the labelled examples: the Dataset's names for the label,
// attributes and features when the job names them (an example's
// attribute split back into its columns), label, attribute, x1... when
// it reads by position; Python's CSVDataParse reads the file back with
// the attribute as text.
func TestExternalDataSets(t *testing.T) {
	for _, c := range []struct {
		name     string
		cols     Columns
		data     csvData
		examples []incremental.Example
		want     string
		columns  string // of x as CSVDataParse reads it
	}{
		{"named", Columns{Label: "preference", Attributes: []string{"season", "building"}, Features: []string{"t", "rh"}},
			newCSVData("city,season,building,t,rh,preference", "Oslo,winter,AC,20.5,0.4,1", "Rome,summer,NV,bad,0.5,2"),
			[]incremental.Example{example("summer|NV", 0, 30, 0.25), example("whole", 2, 1, 2)},
			"preference,season,building,t,rh\n1,winter,AC,20.5,0.4\n0,summer,NV,30,0.25\n2,whole,,1,2\n",
			"['season', 'building', 't', 'rh']"},
		{"by position", Columns{},
			csvData{SamplesFunc: func(_, _ string, _ uint64, fn func(uint64, []byte) error) error {
				_ = fn(0, []byte("1,a,0.5,1"))
				return fn(1, []byte("0,\"b, c\",2,3"))
			}},
			[]incremental.Example{example("b, c", 1, 4, 5)},
			"label,attribute,x1,x2\n1,a,0.5,1\n1,\"b, c\",4,5\n",
			"['attribute', 'x1', 'x2']"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &learner{env: paradigm.Env{Data: c.data}, namespace: "default", dataset: "d", trainProb: 1, cols: c.cols}
			dir := t.TempDir()
			path, err := l.WriteSet(dir, "train", true, c.examples)
			if err != nil {
				t.Fatal(err)
			}
			if path != filepath.Join(dir, "train.csv") {
				t.Errorf("written at %s", path)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != c.want {
				t.Errorf("wrote\n%s\nwant\n%s", raw, c.want)
			}
			cmd := exec.Command("/usr/bin/python3", "-c", `import sys
from sedna.datasources import CSVDataParse
d = CSVDataParse().parse(sys.argv[1], label=sys.argv[2])
print(d.x.columns, len(d.x), d.skipped)`, path, strings.SplitN(c.want, ",", 2)[0])
			cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join("..", "sdk", "python"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("python: %v\n%s", err, out)
			}
			rows := strings.Count(c.want, "\n") - 1
			if got, want := strings.TrimSpace(string(out)), c.columns+" "+strconv.Itoa(rows)+" 0"; got != want {
				t.Errorf("CSVDataParse read %s, want %s", got, want)
			}
		})
	}
}
