package jobfile_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jobfile"
)

// Every job file shown in docs/jobs.md is valid, as muster apply would
// check it.
func TestDocumentedJobsAreValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/jobs.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	n := 0
	for i, b := range blocks {
		if !strings.HasPrefix(b[1], "jobs:") {
			continue // a target's settings file
		}
		n++
		jobs, err := jobfile.Read("docs/jobs.md block", strings.NewReader(b[1]))
		if err != nil {
			t.Errorf("block %d: %v", i, err)
			continue
		}
		for _, j := range jobs {
			j.Normalize()
			if err := catalog.ValidateJob(&j); err != nil {
				t.Errorf("block %d: %v", i, err)
			}
		}
	}
	if n < 6 {
		t.Errorf("found %d job examples in docs/jobs.md; the page has more", n)
	}
}
