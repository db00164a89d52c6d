package topics_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/topics"
)

// workersDoc is the document whose wire examples TestWorkersDoc checks.
const workersDoc = "../docs/WORKERS.md"

// Mirrors of the message bodies of other packages (jointinference and
// federated, whose wire types are unexported), field for field:
// TestWorkersDocMirrors checks that each is its package's type, as written
// in its source, so that decoding into them is decoding into the real ones.

type Request struct {
	ID      string    `msgpack:"id" json:"id"`
	Shape   []int     `msgpack:"shape" json:"shape"`
	DType   string    `msgpack:"dtype,omitempty" json:"dtype,omitempty"`
	Data    []byte    `msgpack:"data,omitempty" json:"data,omitempty"`
	Values  []float32 `msgpack:"values,omitempty" json:"values,omitempty"`
	Label   *int      `msgpack:"label,omitempty" json:"label,omitempty"`
	Attr    string    `msgpack:"attr,omitempty" json:"attr,omitempty"`
	Stream  string    `msgpack:"stream,omitempty" json:"stream,omitempty"`
	ReplyTo string    `msgpack:"-" json:"replyTo,omitempty"`
}

type Result struct {
	ID            string       `msgpack:"id" json:"id"`
	Class         int          `msgpack:"class" json:"class"`
	Score         float32      `msgpack:"score" json:"score"`
	Probs         []float32    `msgpack:"probs,omitempty" json:"probs,omitempty"`
	Boxes         [][6]float32 `msgpack:"boxes,omitempty" json:"boxes,omitempty"`
	Source        string       `msgpack:"source" json:"source"`
	Hard          bool         `msgpack:"hard" json:"hard"`
	Fallback      string       `msgpack:"fallback,omitempty" json:"fallback,omitempty"`
	Error         string       `msgpack:"error,omitempty" json:"error,omitempty"`
	Task          string       `msgpack:"task,omitempty" json:"task,omitempty"`
	Unseen        bool         `msgpack:"unseen,omitempty" json:"unseen,omitempty"`
	LatencyMicros int64        `msgpack:"latencyUs" json:"latencyUs"`
}

type offloadBatch struct {
	Samples []offloadSample `msgpack:"s"`
}

type offloadSample struct {
	ID    string `msgpack:"i,omitempty"`
	Shape []int  `msgpack:"h"`
	DType string `msgpack:"t,omitempty"`
	Data  []byte `msgpack:"d"`
}

type offloadReply struct {
	Results []cloudResult `msgpack:"r"`
	Error   string        `msgpack:"e,omitempty"`
}

type cloudResult struct {
	ID    string       `msgpack:"i,omitempty"`
	Probs []float32    `msgpack:"p,omitempty"`
	Boxes [][6]float32 `msgpack:"b"`
	Error string       `msgpack:"e,omitempty"`
}

type global struct {
	Gen    uint64 `msgpack:"g"`
	Run    uint64 `msgpack:"u"`
	Round  int64  `msgpack:"r"`
	Rounds int64  `msgpack:"rs"`
	Chunk  int    `msgpack:"c"`
	Chunks int    `msgpack:"n"`
	Size   int    `msgpack:"s"`
	Data   []byte `msgpack:"d"`
	Done   bool   `msgpack:"x,omitempty"`
}

type update struct {
	Run     uint64  `msgpack:"u"`
	Round   int64   `msgpack:"r"`
	Role    string  `msgpack:"w"`
	Chunk   int     `msgpack:"c"`
	Chunks  int     `msgpack:"n"`
	Params  int     `msgpack:"p"`
	Samples int64   `msgpack:"k"`
	Loss    float64 `msgpack:"l"`
	Train   float64 `msgpack:"t"`
	Data    []byte  `msgpack:"d"`
}

type join struct {
	Gen   uint64         `msgpack:"g"`
	Role  string         `msgpack:"w"`
	Run   uint64         `msgpack:"u"`
	Round int64          `msgpack:"r"`
	Data  *datasetReport `msgpack:"ds,omitempty"`
}

type datasetReport struct {
	Inputs  int   `msgpack:"i"`
	Classes int   `msgpack:"k"`
	Rows    int64 `msgpack:"n"`
	Bad     int64 `msgpack:"b"`
	Settled bool  `msgpack:"s"`
}

// mirrored lists the mirrors above by the package directory whose types
// they are.
var mirrored = map[string][]string{
	"jointinference": {"Request", "Result", "offloadBatch", "offloadSample", "offloadReply", "cloudResult"},
	"federated":      {"global", "update", "join", "datasetReport"},
}

// wireTypes are the bodies an example may name, with their Go types.
var wireTypes = map[string]func() any{
	"topics.Spec":                 func() any { return new(topics.Spec) },
	"topics.WorkerMetrics":        func() any { return new(topics.WorkerMetrics) },
	"topics.DatasetStatus":        func() any { return new(topics.DatasetStatus) },
	"topics.ErrorEvent":           func() any { return new(topics.ErrorEvent) },
	"jointinference.Request":      func() any { return new(Request) },
	"jointinference.Result":       func() any { return new(Result) },
	"jointinference.offloadBatch": func() any { return new(offloadBatch) },
	"jointinference.offloadReply": func() any { return new(offloadReply) },
	"federated.global":            func() any { return new(global) },
	"federated.update":            func() any { return new(update) },
	"federated.join":              func() any { return new(join) },
}

// bodyOf names the body type of each envelope kind the document shows.
var bodyOf = map[string]string{
	topics.KindSpec:          "topics.Spec",
	topics.KindWorkerMetrics: "topics.WorkerMetrics",
	topics.KindDatasetStatus: "topics.DatasetStatus",
	topics.KindError:         "topics.ErrorEvent",
	topics.KindJIRequest:     "jointinference.Request",
	topics.KindJIResult:      "jointinference.Result",
	topics.KindJIOffload:     "jointinference.offloadBatch",
	topics.KindJIReply:       "jointinference.offloadReply",
	topics.KindFLGlobal:      "federated.global",
	topics.KindFLUpdate:      "federated.update",
	topics.KindFLJoin:        "federated.join",
}

type wireExample struct {
	name string
	line int
	hex  string
	json string
}

var exampleMarker = regexp.MustCompile(`^<!-- wire-example: ([A-Za-z0-9_.]+) -->$`)

// wireExamples reads the examples of doc: a line <!-- wire-example: NAME -->,
// then a ```hex block, then a ```json block (blank lines allowed between).
func wireExamples(t *testing.T, doc []byte) []wireExample {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	var out []wireExample
	for i := 0; i < len(lines); i++ {
		m := exampleMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			if strings.Contains(lines[i], "wire-example") {
				t.Errorf("%s:%d: a wire-example marker not of the form <!-- wire-example: NAME -->", workersDoc, i+1)
			}
			continue
		}
		ex := wireExample{name: m[1], line: i + 1}
		block := func(lang string) (string, bool) {
			i++
			for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
				i++
			}
			if i >= len(lines) || strings.TrimSpace(lines[i]) != "```"+lang {
				t.Errorf("%s:%d: example %s: want a ```%s block here", workersDoc, i+1, ex.name, lang)
				return "", false
			}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, lines[i])
			}
			return strings.Join(body, "\n"), i < len(lines)
		}
		var ok bool
		if ex.hex, ok = block("hex"); !ok {
			continue
		}
		if ex.json, ok = block("json"); !ok {
			continue
		}
		out = append(out, ex)
	}
	return out
}

// TestWorkersDoc checks every wire example of docs/WORKERS.md (a line
// <!-- wire-example: NAME -->, a ```hex block, a ```json block), so that
// none goes stale: the hex is exactly one msgpack value, whose JSON form
// (maps as objects, bin as base64, integers without a decimal point and
// floats with one) is the json block; the real decoder of NAME
// (topics.UnmarshalEnvelope for "envelope", else topics.Unmarshal into
// NAME's Go type) reads it, and encoding the decoded value again
// (Envelope.Marshal; msgpack with map keys sorted) gives the same bytes
// (or, for a type whose own encoder writes a map in Go's varying order,
// the same value),
// so no key of the example is one the type does not have; an envelope's
// body is checked the same way as the type of its kind. It also checks
// what the examples say of each other (a spec's data is a document
// api.ParseDocument reads, quoted in full in the text; a whole global
// model is one ml.Unmarshal reads; lengths agree with counts and shapes),
// and that each name of wireTypes, and "envelope", has an example.
func TestWorkersDoc(t *testing.T) {
	doc, err := os.ReadFile(workersDoc)
	if err != nil {
		t.Fatal(err)
	}
	examples := wireExamples(t, doc)
	seen := map[string]bool{}
	for _, ex := range examples {
		seen[ex.name] = true
		t.Run(fmt.Sprintf("%s@%d", ex.name, ex.line), func(t *testing.T) {
			raw, err := hex.DecodeString(strings.Join(strings.Fields(ex.hex), ""))
			if err != nil {
				t.Fatalf("the hex does not decode: %v", err)
			}
			got, err := jsonForm(raw)
			if err != nil {
				t.Fatalf("the bytes are not one msgpack value: %v", err)
			}
			want, err := jsonOfDoc(ex.json)
			if err != nil {
				t.Fatalf("the json block does not parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("the bytes read as\n  %s\nthe json block says\n  %s", g, w)
			}
			if ex.name == "envelope" {
				checkEnvelope(t, raw, doc)
				return
			}
			if _, ok := wireTypes[ex.name]; !ok {
				t.Fatalf("no Go type is known for %q (known: envelope and those of wireTypes)", ex.name)
			}
			checkBody(t, ex.name, raw, doc)
		})
	}
	for name := range wireTypes {
		if !seen[name] {
			t.Errorf("%s has no example of %s", workersDoc, name)
		}
	}
	if !seen["envelope"] {
		t.Errorf("%s has no example of an envelope", workersDoc)
	}
}

func checkEnvelope(t *testing.T, raw, doc []byte) {
	t.Helper()
	env, err := topics.UnmarshalEnvelope(raw, topics.Limits{})
	if err != nil {
		t.Fatalf("topics.UnmarshalEnvelope: %v", err)
	}
	again, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, raw) {
		t.Errorf("the envelope encodes again as\n%s\nnot as documented", spaced(again))
	}
	name, ok := bodyOf[env.Kind]
	if !ok {
		t.Fatalf("kind %q: no body type known for it", env.Kind)
	}
	checkBody(t, name, env.Body, doc)
}

func checkBody(t *testing.T, name string, raw, doc []byte) {
	t.Helper()
	v := wireTypes[name]()
	if err := topics.Unmarshal(name, raw, v); err != nil {
		t.Fatalf("topics.Unmarshal into %s: %v", name, err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		// A type with its own encoder may write a map's keys in Go's map
		// order, which varies: the same value in another order is the same.
		a, errA := jsonForm(buf.Bytes())
		b, errB := jsonForm(raw)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("the %s encodes again as\n%s\nnot as documented (a key the type does not have, or of another type?)", name, spaced(buf.Bytes()))
		}
	}
	switch b := v.(type) {
	case *topics.Spec:
		r, err := api.ParseDocument(b.Data)
		if err != nil || r == nil || r.Key() != b.Key {
			t.Errorf("the spec's data is not the document of %s: %v", b.Key, err)
		}
		if !bytes.Contains(doc, b.Data) {
			t.Errorf("the spec's data is not quoted in the text:\n%s", b.Data)
		}
	case *global:
		if !b.Done && b.Chunks == 1 {
			if len(b.Data) != b.Size {
				t.Errorf("one piece of %d bytes, the model of %d", len(b.Data), b.Size)
			}
			if _, err := ml.Unmarshal(b.Data); err != nil {
				t.Errorf("the model does not read: %v", err)
			}
		}
	case *update:
		if b.Chunks == 1 && len(b.Data) != 4*b.Params {
			t.Errorf("%d bytes of weights, %d float32s said", len(b.Data), b.Params)
		}
		for i := 0; i+4 <= len(b.Data); i += 4 {
			if f := math.Float32frombits(binary.LittleEndian.Uint32(b.Data[i:])); math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				t.Errorf("weight %d is %v", i/4, f)
			}
		}
	case *offloadBatch:
		for i, s := range b.Samples {
			if n := elements(s.Shape); (s.DType == "" || s.DType == "u8") && len(s.Data) != n || s.DType == "f32" && len(s.Data) != 4*n {
				t.Errorf("sample %d: %d bytes for shape %v of %q", i, len(s.Data), s.Shape, s.DType)
			}
		}
	case *Request:
		if n := elements(b.Shape); (b.DType == "" || b.DType == "u8") && len(b.Data) != n {
			t.Errorf("%d bytes for shape %v", len(b.Data), b.Shape)
		}
	}
}

func elements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// spaced writes b as the document does: bytes in hex, 16 a line.
func spaced(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		switch {
		case i > 0 && i%16 == 0:
			s.WriteByte('\n')
		case i > 0:
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02x", c)
	}
	return s.String()
}

// jsonForm decodes one msgpack value (nothing after it) and returns it as
// the document writes it in JSON, in the form jsonOfDoc gives.
func jsonForm(b []byte) (any, error) {
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	v, err := d.DecodeInterface()
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the value", r.Len())
	}
	return normal(v)
}

// normal makes a decoded value comparable with a parsed json block:
// objects, arrays, strings, bools and nil as they are, bytes as base64,
// an integer as "i:" and its decimal digits, a float as "f:" and its
// shortest decimal form (a float32 by its own shortest form).
func normal(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normal(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normal(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case []byte:
		return base64.StdEncoding.EncodeToString(x), nil
	case float32:
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return "f:" + strconv.FormatFloat(f, 'g', -1, 64), nil
	case float64:
		return "f:" + strconv.FormatFloat(x, 'g', -1, 64), nil
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return "i:" + fmt.Sprint(x), nil
	}
	return nil, fmt.Errorf("a value of Go type %T has no JSON form here", v)
}

// jsonOfDoc parses a json block into the form normal gives.
func jsonOfDoc(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("more than one value")
	}
	var walk func(any) (any, error)
	walk = func(v any) (any, error) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				n, err := walk(e)
				if err != nil {
					return nil, err
				}
				x[k] = n
			}
		case []any:
			for i, e := range x {
				n, err := walk(e)
				if err != nil {
					return nil, err
				}
				x[i] = n
			}
		case json.Number:
			if !strings.ContainsAny(string(x), ".eE") {
				return "i:" + string(x), nil
			}
			f, err := x.Float64()
			if err != nil {
				return nil, err
			}
			return "f:" + strconv.FormatFloat(f, 'g', -1, 64), nil
		}
		return v, nil
	}
	return walk(v)
}

// TestWorkersDocMirrors checks that each mirror type of this file is
// declared, field for field (names, types and tags, in order), as the type
// of the same name in its package's source, so that the examples decoded
// into the mirrors are decoded as the paradigms decode them.
func TestWorkersDocMirrors(t *testing.T) {
	own := structsOf(t, ".", "workers_doc_test.go")
	for dir, names := range mirrored {
		theirs := structsOf(t, filepath.Join("..", dir), "")
		for _, name := range names {
			mine, ok := own[name]
			if !ok {
				t.Errorf("no mirror of %s.%s in this file", dir, name)
				continue
			}
			src, ok := theirs[name]
			if !ok {
				t.Errorf("%s has no type %s: the document and its mirror here are stale", dir, name)
				continue
			}
			if mine != src {
				t.Errorf("%s.%s is\n%s\nits mirror here (and the document) says\n%s", dir, name, src, mine)
			}
		}
	}
}

// structsOf returns the struct types declared in the non-test Go files of
// dir (or in the one file only), each as one line per field: names, type
// and tag.
func structsOf(t *testing.T, dir, only string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		base := filepath.Base(f)
		if only != "" && base != only || only == "" && strings.HasSuffix(base, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			var s strings.Builder
			for _, fl := range st.Fields.List {
				var names []string
				for _, id := range fl.Names {
					names = append(names, id.Name)
				}
				tag := ""
				if fl.Tag != nil {
					tag = fl.Tag.Value
				}
				fmt.Fprintf(&s, "%s %s %s\n", strings.Join(names, ", "), types.ExprString(fl.Type), tag)
			}
			out[ts.Name.Name] = s.String()
			return false
		})
	}
	return out
}
