package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// --all prints its pages as one document, byte for byte what printing
// every entry at once prints, whatever the pages' sizes.
func TestPrintPagesAllIsOneDocument(t *testing.T) {
	type entry struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	var all []entry
	for i := range 7 {
		all = append(all, entry{i, fmt.Sprintf("e<%d>", i)})
	}
	table := func(w io.Writer, es []entry) error {
		if len(es) == 0 {
			_, err := fmt.Fprintln(w, "none")
			return err
		}
		for _, e := range es {
			fmt.Fprintln(w, e.ID, e.Name)
		}
		return nil
	}
	for _, format := range []string{outputJSON, outputYAML, outputTable} {
		for _, sizes := range [][]int{{3, 3, 1}, {7}, {0, 7}, {1, 0, 6}, {}} {
			t.Run(fmt.Sprint(format, sizes), func(t *testing.T) {
				want := all
				if len(sizes) == 0 {
					want = []entry{} // as the API answers
				}
				var out bytes.Buffer
				cmd := &cobra.Command{}
				cmd.SetOut(&out)
				calls, from := 0, 0
				read := func(cursor string) ([]entry, string, error) {
					if cursor != fmt.Sprint(calls) {
						t.Fatalf("read %d with cursor %q, want %q", calls, cursor, fmt.Sprint(calls))
					}
					if len(sizes) == 0 {
						return nil, "", nil
					}
					page := all[from : from+sizes[calls]]
					from += sizes[calls]
					calls++
					next := fmt.Sprint(calls)
					if calls == len(sizes) {
						next = ""
					}
					return page, next, nil
				}
				if err := printPages(cmd, &pageFlags{all: true, cursor: "0"}, format, read, table); err != nil {
					t.Fatal(err)
				}
				var whole bytes.Buffer
				if err := printAs(&whole, format, want, func(w io.Writer) error { return table(w, want) }); err != nil {
					t.Fatal(err)
				}
				if got := out.String(); got != whole.String() {
					t.Errorf("pages printed\n%s\nwant\n%s", got, whole.String())
				}
				if strings.Count(out.String(), "e<6>")+strings.Count(out.String(), `e\u003c6\u003e`) != min(1, len(want)) {
					t.Errorf("the last entry is not printed once:\n%s", out.String())
				}
			})
		}
	}
}
