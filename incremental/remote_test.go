package incremental

import (
	"bytes"
	"testing"
)

// A work order split into parts comes together whatever the order of its
// parts and with a part sent twice; parts that disagree on the count
// start the attempt again; malformed part numbers are refused; at most
// maxAssembling attempts are held (the oldest dropped).
func TestWorkPartsComeTogether(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), workPartBytes/4) // 2.5 parts' worth
	parts, err := split("1-train-1", workResult{Attempt: "1-train-1", Model: big})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 3 {
		t.Fatalf("%d parts for %d bytes", len(parts), len(big))
	}
	a := newAssembler()
	var whole []byte
	for _, i := range []int{2, 0, 2, 1} {
		if whole != nil {
			t.Fatalf("whole before every part came")
		}
		if whole, err = a.add(parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{3, 4, 5, 6} {
		if i < len(parts) {
			if whole != nil {
				t.Fatalf("whole before part %d", i)
			}
			whole, _ = a.add(parts[i])
		}
	}
	if whole == nil {
		t.Fatal("never whole")
	}
	var once []byte
	for _, p := range parts {
		once = append(once, p.Data...)
	}
	if !bytes.Equal(whole, once) {
		t.Fatal("the parts came together wrong")
	}
	for _, bad := range []workPart{{Attempt: "x", Part: 0, Parts: 0}, {Attempt: "x", Part: 2, Parts: 2}, {Attempt: "x", Part: -1, Parts: 2}} {
		if _, err := a.add(bad); err == nil {
			t.Errorf("part %d of %d taken", bad.Part, bad.Parts)
		}
	}
	for i := range maxAssembling + 2 {
		if _, err := a.add(workPart{Attempt: string(rune('a' + i)), Part: 0, Parts: 2, Data: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.parts) != maxAssembling || len(a.order) != maxAssembling {
		t.Fatalf("%d attempts held, want %d", len(a.parts), maxAssembling)
	}
	if _, held := a.parts["a"]; held {
		t.Fatal("the oldest attempt still held")
	}
}
