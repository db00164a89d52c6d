// Package memtrim releases the pages of a process's own executable that
// it mapped while starting.
//
// A Go program runs every linked package's initialisation before main, and
// each page fault on its executable maps a block of neighbouring pages
// (the kernel's fault-around, 64 KiB by default), so a large binary starts
// with most of its code and read-only data mapped: for the one sedna
// binary, about 16 MB of a 23 MB resident set at rest. Those pages are
// clean and shared copies of the file; releasing the mappings
// (madvise MADV_DONTNEED on the executable's read-only mappings) leaves
// them in the page cache, where the kernel can reclaim them like any
// other file data, and what the process runs from then on faults back in.
// It frees no memory by itself: it makes the resident set the working set.
package memtrim

// Released says what Release did.
type Released struct {
	// Mappings is how many read-only mappings of the executable were
	// released; BeforeKiB and AfterKiB are the resident set (VmRSS)
	// around it.
	Mappings            int
	BeforeKiB, AfterKiB int64
}
