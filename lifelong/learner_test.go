package lifelong_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/lifelong"
)

// A Dataset line is label,attribute,features; what is not is refused
// (and a line round-trips through FormatSample).
func TestParseSample(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		want lifelong.Sample
	}{
		{"2,office,0.5,-1", true, lifelong.Sample{Y: 2, Attr: "office", X: []float32{0.5, -1}}},
		{" 0 , , 3 ", true, lifelong.Sample{Y: 0, Attr: "", X: []float32{3}}},
		{"", false, lifelong.Sample{}},
		{"1,office", false, lifelong.Sample{}},
		{"-1,office,2", false, lifelong.Sample{}},
		{"x,office,2", false, lifelong.Sample{}},
		{"1,office,NaN", false, lifelong.Sample{}},
		{"1,office,Inf", false, lifelong.Sample{}},
		{"1,office,2,abc", false, lifelong.Sample{}},
	} {
		got, ok := lifelong.ParseSample([]byte(c.line))
		if ok != c.ok || got.Y != c.want.Y || got.Attr != c.want.Attr || !slices.Equal(got.X, c.want.X) {
			t.Errorf("ParseSample(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
		if ok {
			back, ok := lifelong.ParseSample([]byte(lifelong.FormatSample(got)))
			if !ok || back.Y != got.Y || back.Attr != got.Attr || !slices.Equal(back.X, got.X) {
				t.Errorf("%q does not round-trip: %+v", c.line, back)
			}
		}
	}
}

// The train template's env sets the knowledge base, Sedna's names and
// values accepted; a bad value is refused, saying which.
func TestConfigOf(t *testing.T) {
	cfg, err := lifelong.ConfigOf(map[string]string{"task_definition": "TaskDefinitionByCluster", "hidden": "64,32", "epochs": "5",
		"unseen_window": "20", "unseen_quantile": "0.05", "min_task_samples": "30", "seed": "7"})
	if err != nil || cfg.Method != lifelong.ByCluster || !slices.Equal(cfg.Hidden, []int{64, 32}) || cfg.Epochs != 5 || cfg.Window != 20 ||
		cfg.UnseenQuantile != 0.05 || cfg.MinTaskSamples != 30 || cfg.Seed != 7 {
		t.Fatalf("ConfigOf = %+v, %v", cfg, err)
	}
	if cfg, err := lifelong.ConfigOf(nil); err != nil || cfg.Method != lifelong.ByAttribute {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	for key, value := range map[string]string{"task_definition": "origin", "hidden": "0", "epochs": "x", "unseen_quantile": "0.9",
		"learning_rate": "2", "seed": "-1", "max_tasks": "100"} {
		if _, err := lifelong.ConfigOf(map[string]string{key: value}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: %v", key, value, err)
		}
	}
}

// A job that names its Dataset's columns reads each line by its header:
// the label, the attribute columns joined by "|", the features named (or
// every other column); a column the header lacks is refused, naming it.
func TestColumnsParser(t *testing.T) {
	header := []string{"id", "Season", "temp", "Thermal preference", "Cooling", "rh"}
	cols := lifelong.ColumnsOf(map[string]string{"label": "Thermal preference", "attributes": "Season, Cooling"})
	if !cols.Named() {
		t.Fatal("named columns not seen")
	}
	parse, err := cols.Parser(header)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := parse([]byte("7,summer,24.5,2,fan,55"))
	if !ok || s.Y != 2 || s.Attr != "summer|fan" || !slices.Equal(s.X, []float32{7, 24.5, 55}) {
		t.Fatalf("parsed %+v, %v", s, ok)
	}
	for _, bad := range []string{"7,summer,24.5,2,fan", "7,summer,hot,2,fan,55", "7,summer,24.5,-1,fan,55"} {
		if _, ok := parse([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	picked, err := lifelong.ColumnsOf(map[string]string{"label": "Thermal preference", "features": "rh,temp"}).Parser(header)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := picked([]byte("7,summer,24.5,2,fan,55")); !ok || s.Attr != "" || !slices.Equal(s.X, []float32{55, 24.5}) {
		t.Fatalf("features named: %+v, %v", s, ok)
	}
	for _, c := range []map[string]string{{"label": "comfort"}, {"label": "Thermal preference", "attributes": "Climate"},
		{"attributes": "Season"}, {"label": "Thermal preference", "features": "wind"}} {
		if _, err := lifelong.ColumnsOf(c).Parser(header); err == nil {
			t.Errorf("%v: no error", c)
		}
	}
	if lifelong.ColumnsOf(nil).Named() {
		t.Error("no env names columns")
	}
}
