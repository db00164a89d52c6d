// Package archtest holds the tests of the project's layout: who may
// import whom, and where topics are built.
package archtest

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sedna-go/sedna"

// root is the repository's root, from this package's directory.
const root = "../.."

// deps lists the packages pkg depends on, itself excluded (go list -deps).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var own []string
	for _, p := range strings.Fields(string(out)) {
		if p != module+"/"+pkg && (p == module || strings.HasPrefix(p, module+"/")) {
			own = append(own, strings.TrimPrefix(p, module+"/"))
		}
	}
	return own
}

// paradigms are the paradigm packages: the ones paradigm/all lists.
func paradigms(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/paradigm/all")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Imports []string }
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&p); err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, imp := range p.Imports {
		if rest, ok := strings.CutPrefix(imp, module+"/"); ok && rest != "paradigm" {
			list = append(list, rest)
		}
	}
	if len(list) < 2 {
		t.Fatalf("paradigm/all lists %v: want at least joint inference and federated learning", list)
	}
	return list
}

// The runtime imports no paradigm; no paradigm imports the broker or one
// of its parts (broker/...), nor the runtime; topics imports nothing of
// the project.
func TestImports(t *testing.T) {
	ps := paradigms(t)
	for _, side := range []string{"edge", "cloud"} {
		for _, d := range deps(t, side) {
			if slices.Contains(ps, d) {
				t.Errorf("%s imports paradigm package %s", side, d)
			}
		}
	}
	for _, p := range ps {
		for _, d := range deps(t, p) {
			if d == "broker" || strings.HasPrefix(d, "broker/") || d == "edge" || d == "cloud" {
				t.Errorf("paradigm package %s imports %s", p, d)
			}
		}
	}
	if d := deps(t, "topics"); len(d) > 0 {
		t.Errorf("topics imports %v of the project", d)
	}
}

// A violation is where a topic or a message kind is built outside topics.
type violation struct {
	pos  token.Position
	what string
}

// topicViolations finds, in the non-test Go files of the tree outside
// topics/, what builds a topic or names a message kind: a string
// concatenated after a topic of package topics (topics.JobPrefix(r) +
// "reply"), topics.Root used as a value to build on, a literal starting
// with the project's tree or a KubeEdge topic, and a constant named Kind...
// whose value is a dotted literal (an envelope kind).
func topicViolations(t *testing.T, dir string) []violation {
	t.Helper()
	var out []violation
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != dir && (name == "topics" && filepath.Dir(path) == dir || strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		isTopics := func(e ast.Expr) bool {
			switch x := e.(type) {
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
					id, ok := sel.X.(*ast.Ident)
					return ok && id.Name == "topics"
				}
			case *ast.SelectorExpr:
				id, ok := x.X.(*ast.Ident)
				return ok && id.Name == "topics" && x.Sel.Name == "Root"
			}
			return false
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if x.Op == token.ADD && isTopics(x.X) {
					out = append(out, violation{fset.Position(x.Pos()), "a topic built on one of package topics"})
				}
			case *ast.BasicLit:
				if x.Kind == token.STRING {
					if s, err := strconv.Unquote(x.Value); err == nil && (strings.HasPrefix(s, "sedna/v1") || strings.HasPrefix(s, "$hw/") || strings.HasPrefix(s, "$ke/")) {
						out = append(out, violation{fset.Position(x.Pos()), "a topic literal " + strconv.Quote(s)})
					}
				}
			case *ast.ValueSpec:
				for i, name := range x.Names {
					if !strings.HasPrefix(name.Name, "Kind") || i >= len(x.Values) {
						continue
					}
					if lit, ok := x.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, _ := strconv.Unquote(lit.Value); strings.Contains(s, ".") {
							out = append(out, violation{fset.Position(name.Pos()), "a message kind " + strconv.Quote(s) + " defined outside topics"})
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every topic and message kind of the project is built in package topics.
func TestTopicsAreBuiltInTopics(t *testing.T) {
	for _, v := range topicViolations(t, root) {
		t.Errorf("%s: %s (build it in package topics)", v.pos, v.what)
	}
}

// The check finds each kind of violation it looks for, and leaves alone a
// topic of package topics used whole, a concatenation that ends on one (a
// config text naming a prefix), and a resource kind without a dot.
func TestTopicViolationsAreFound(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import "github.com/sedna-go/sedna/topics"

const KindThing = "p.thing"
const KindDataset = "Dataset"

var (
	a = topics.JobPrefix(topics.JobRef{}) + "reply"
	b = topics.Root + "/x"
	c = "sedna/v1/node/x"
	d = "$hw/events/upload/x"
	e = "$ke/events/device/x/data/update"
	f = topics.JobTopic(topics.JobRef{}, "reply")
	g = "remotePrefix: '" + topics.NodeAppPrefix("n") + "'"
)
`
	if err := writeFile(filepath.Join(dir, "p", "p.go"), src); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "p", "p_test.go"), "package p\n\nvar z = \"sedna/v1/test\"\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "topics", "t.go"), "package topics\n\nconst Root = \"sedna/v1\"\n"); err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, v := range topicViolations(t, dir) {
		lines = append(lines, v.pos.Line)
	}
	// KindThing (5), a (9), b (10), c (11), d (12), e (13).
	if want := []int{5, 9, 10, 11, 12, 13}; !slices.Equal(lines, want) {
		t.Fatalf("violations on lines %v, want %v", lines, want)
	}
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
