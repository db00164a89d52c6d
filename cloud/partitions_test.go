package cloud

import (
	"fmt"
	"slices"
	"testing"
)

func TestShare(t *testing.T) {
	for _, c := range []struct {
		name           string
		n              int
		members        []string
		owners         map[int]string
		me             string
		claim, release []int
	}{
		{"alone, nothing owned", 4, []string{"a"}, nil, "a", []int{0, 1, 2, 3}, nil},
		{"not a member yet", 4, []string{"a"}, nil, "b", nil, nil},
		{"first of two takes its half of the free", 4, []string{"b", "a"}, nil, "a", []int{0, 1}, nil},
		{"second of two, the rest taken", 4, []string{"a", "b"}, map[int]string{0: "a", 1: "a"}, "b", []int{2, 3}, nil},
		{"over its share releases its highest", 4, []string{"a", "b"}, map[int]string{0: "a", 1: "a", 2: "a", 3: "a"}, "a", nil, []int{3, 2}},
		{"the newcomer waits for what is released", 4, []string{"a", "b"}, map[int]string{0: "a", 1: "a", 2: "a", 3: "a"}, "b", nil, nil},
		{"a gone member's partitions are free", 4, []string{"a"}, map[int]string{0: "a", 1: "a", 2: "x", 3: "x"}, "a", []int{2, 3}, nil},
		{"odd split: the first sorted gets the extra", 5, []string{"b", "a"}, nil, "a", []int{0, 1, 2}, nil},
		{"odd split: the second gets the rest", 5, []string{"b", "a"}, map[int]string{0: "a", 1: "a", 2: "a"}, "b", []int{3, 4}, nil},
		{"at its share: nothing to do", 4, []string{"a", "b"}, map[int]string{0: "a", 1: "a", 2: "b", 3: "b"}, "a", nil, nil},
		{"more members than partitions", 2, []string{"a", "b", "c"}, map[int]string{0: "a", 1: "b"}, "c", nil, nil},
		{"duplicated member names count once", 2, []string{"a", "a"}, nil, "a", []int{0, 1}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			claim, release := share(c.n, c.members, c.owners, c.me)
			if !slices.Equal(claim, c.claim) || !slices.Equal(release, c.release) {
				t.Fatalf("share = claim %v, release %v; want %v, %v", claim, release, c.claim, c.release)
			}
		})
	}
}

// Replicas that each apply share in turn, as their watches fire, come to
// own every partition exactly once, evenly, whatever the order in which
// they joined and left.
func TestShareConverges(t *testing.T) {
	for _, c := range []struct {
		n     int
		steps [][]string // the members after each change
	}{
		{8, [][]string{{"a"}, {"a", "b"}, {"a", "b", "c"}, {"b", "c"}, {"c"}}},
		{16, [][]string{{"r2", "r1"}, {"r1", "r2", "r3"}, {"r1", "r3"}}},
		{3, [][]string{{"a", "b", "c", "d"}, {"a"}}},
	} {
		owners := map[int]string{}
		for _, members := range c.steps {
			t.Run(fmt.Sprintf("%d/%v", c.n, members), func(t *testing.T) {
				// A member that left takes its keys with its lease.
				for p, o := range owners {
					if !slices.Contains(members, o) {
						delete(owners, p)
					}
				}
				for round := 0; ; round++ {
					if round > 10 {
						t.Fatalf("no steady state after 10 rounds: %v", owners)
					}
					changed := false
					for _, me := range members {
						claim, release := share(c.n, members, owners, me)
						for _, p := range release {
							delete(owners, p)
							changed = true
						}
						for _, p := range claim {
							if owners[p] != "" {
								t.Fatalf("%s claims %d, owned by %s", me, p, owners[p])
							}
							owners[p] = me
							changed = true
						}
					}
					if !changed {
						break
					}
				}
				count := map[string]int{}
				for p := range c.n {
					if owners[p] == "" {
						t.Fatalf("partition %d owned by no one: %v", p, owners)
					}
					count[owners[p]]++
				}
				lo, hi := c.n, 0
				for _, m := range members {
					lo, hi = min(lo, count[m]), max(hi, count[m])
				}
				if hi-lo > 1 {
					t.Fatalf("uneven shares: %v", count)
				}
			})
		}
	}
}
