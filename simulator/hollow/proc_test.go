package hollow

import (
	"os"
	"testing"
)

// ProcUsage reads this test process: some memory, some CPU, threads.
func TestProcUsageOfThisProcess(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	u, err := ProcUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS < 64<<20 || u.CPU <= 0 || u.Thread < 1 {
		t.Fatalf("%+v: want RSS over the 64 MiB touched, CPU time and threads", u)
	}
	if _, err := ProcUsage(1 << 30); err == nil {
		t.Fatal("a process that does not exist was read")
	}
	_ = buf[len(buf)-1]
}
