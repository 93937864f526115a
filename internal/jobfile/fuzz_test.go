package jobfile_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jobfile"
)

// FuzzRead reads arbitrary bytes as a job file. Whatever the input, Read
// does not panic; it either returns jobs that pass muster.Job.Validate or
// an EINVALID error; and it allocates memory in proportion to the input,
// never in proportion to what aliases would expand it to. The seed corpus
// is in testdata/fuzz/FuzzRead.
//
//	go test -run='^$' -fuzz=FuzzRead -fuzztime=1m ./internal/jobfile
func FuzzRead(f *testing.F) {
	f.Add([]byte("jobs:\n  - name: a\n    targets: [web1]\n    steps:\n      - name: s\n        shell: echo hi\n"))
	f.Add([]byte("jobs: &j\n  - *j\n"))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\njobs: *b\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		jobs, err := jobfile.Read("fuzz.yaml", bytes.NewReader(src))
		runtime.ReadMemStats(&after)
		if err != nil {
			if code := muster.ErrorCode(err); code != muster.EINVALID {
				t.Fatalf("error %v has code %q, want %q", err, code, muster.EINVALID)
			}
		}
		for i := range jobs {
			if err := jobs[i].Validate(); err != nil {
				t.Fatalf("Read accepted job %d, which Validate refuses: %v", i, err)
			}
		}
		// Parsing costs yaml.v3 up to about 128 bytes per input byte, and
		// locating a syntax error parses a few prefixes again.
		if allocated, limit := after.TotalAlloc-before.TotalAlloc, uint64(64<<20+4096*len(src)); allocated > limit {
			t.Fatalf("reading %d bytes allocated %d bytes; want at most %d", len(src), allocated, limit)
		}
	})
}
