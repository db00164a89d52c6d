package paradigm_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/workers"
)

// fake is a paradigm whose halves record the env they were given and
// when they are closed.
type fake struct {
	kind, name string
	view       paradigm.View
	fail       error
	got        *[]paradigm.Env
	closed     *[]string
}

func (f fake) Kind() string                                  { return f.kind }
func (f fake) Name() string                                  { return f.name }
func (f fake) View() paradigm.View                           { return f.view }
func (f fake) Edge(env paradigm.Env) (paradigm.Half, error)  { return f.half("edge", env) }
func (f fake) Cloud(env paradigm.Env) (paradigm.Half, error) { return f.half("cloud", env) }

func (f fake) half(role string, env paradigm.Env) (paradigm.Half, error) {
	if f.fail != nil {
		return paradigm.Half{}, f.fail
	}
	*f.got = append(*f.got, env)
	return paradigm.Half{
		Workers: map[string]workers.Builtin{role: func(context.Context, workers.Spec, *slog.Logger) error { return nil }},
		Close:   func() { *f.closed = append(*f.closed, f.name) },
	}, nil
}

// Check refuses what would make two paradigms share a kind or a place in
// the store, and accepts a set of distinct, well-named ones.
func TestSetCheck(t *testing.T) {
	p := func(kind, name string) paradigm.Paradigm { return fake{kind: kind, name: name} }
	for _, tc := range []struct {
		set  paradigm.Set
		want string // "" for no error
	}{
		{paradigm.Set{}, ""},
		{paradigm.Set{p("A", "a"), p("B", "b-2")}, ""},
		{paradigm.Set{p("A", "a"), p("A", "b")}, "two paradigms of kind A"},
		{paradigm.Set{p("A", "a"), p("B", "a")}, "two paradigms named a"},
		{paradigm.Set{p("", "a")}, "without a kind"},
		{paradigm.Set{p("A", "")}, `named ""`},
		{paradigm.Set{p("A", "cp")}, `named "cp"`},
		{paradigm.Set{p("A", "jobs")}, `named "jobs"`},
		{paradigm.Set{p("A", "a/b")}, `named "a/b"`},
		{paradigm.Set{p("A", "FL")}, `named "FL"`},
	} {
		err := tc.set.Check()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.set.Kinds(), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one saying %q", tc.set.Kinds(), err, tc.want)
		}
	}
}

// Start gives each half its env on the side asked, keys the workers by
// kind and role, leaves out a half that fails (logged), and Close closes
// the started halves in reverse order.
func TestStartAndClose(t *testing.T) {
	var got []paradigm.Env
	var closed []string
	set := paradigm.Set{
		fake{kind: "A", name: "a", got: &got, closed: &closed},
		fake{kind: "B", name: "b", fail: errors.New("no"), got: &got, closed: &closed},
		fake{kind: "C", name: "c", got: &got, closed: &closed},
	}
	var logged strings.Builder
	st := set.Start(paradigm.Cloud, func(p paradigm.Paradigm) paradigm.Env {
		return paradigm.Env{Node: "cloud-of-" + p.Name()}
	}, slog.New(slog.NewTextHandler(&logged, nil)))
	if len(got) != 2 || got[0].Node != "cloud-of-a" || got[1].Node != "cloud-of-c" {
		t.Fatalf("envs given: %+v", got)
	}
	for _, e := range got {
		if e.Side != paradigm.Cloud {
			t.Fatalf("env on side %v, want cloud", e.Side)
		}
	}
	keys := []string{}
	for k := range st.Builtins() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"A/cloud", "C/cloud"}) {
		t.Fatalf("builtins %v", keys)
	}
	if !strings.Contains(logged.String(), "kind=B") || !strings.Contains(logged.String(), "error=no") {
		t.Fatalf("the failed half is not logged: %q", logged.String())
	}
	st.Close()
	if !slices.Equal(closed, []string{"c", "a"}) {
		t.Fatalf("closed %v, want c then a", closed)
	}
	st.Close()
	if len(closed) != 2 {
		t.Fatalf("closed twice: %v", closed)
	}
}

// A view with no deciders makes every worker decide; one with deciders
// only those roles.
func TestViewDecides(t *testing.T) {
	all := paradigm.View{}
	agg := paradigm.View{Deciders: []string{"aggregation"}}
	if !all.Decides("train") || !all.Decides("aggregation") {
		t.Fatal("an empty view must let every role decide")
	}
	if agg.Decides("train") || !agg.Decides("aggregation") {
		t.Fatal("a view with deciders must let only them decide")
	}
}

// The Env's defaults: the system clock and slog's logger when none is
// given, the given ones otherwise.
func TestEnvDefaults(t *testing.T) {
	var e paradigm.Env
	if e.Clock().IsZero() || e.Logger() != slog.Default() {
		t.Fatal("defaults")
	}
	l := slog.New(slog.DiscardHandler)
	e = paradigm.Env{Log: l}
	if e.Logger() != l {
		t.Fatal("the given logger is not used")
	}
}
