package sqlstore

import (
	"slices"
	"strings"
	"testing"
)

// A batch is stored in statements of powers of two rows, the largest
// first, each with a row of parameters per row it stores.
func TestValuesInsert(t *testing.T) {
	v := newValuesInsert("INSERT INTO t (a, b, c)", 3, "ON CONFLICT DO NOTHING")
	for _, tc := range []struct {
		batch int
		want  []int
	}{
		{1, []int{1}},
		{2, []int{2}},
		{3, []int{2, 1}},
		{128, []int{128}},
		{500, []int{128, 128, 128, 64, 32, 16, 4}},
		{1000, []int{128, 128, 128, 128, 128, 128, 128, 64, 32, 8}},
	} {
		var got []int
		for rest := tc.batch; rest > 0; {
			n := v.rows(rest)
			got = append(got, n)
			rest -= n
			text := v.text(n)
			if params := strings.Count(text, "?"); params != 3*n {
				t.Errorf("statement for %d rows has %d parameters, want %d: %s", n, params, 3*n, text)
			}
			if !strings.HasPrefix(text, "INSERT INTO t (a, b, c) VALUES (?, ?, ?)") || !strings.HasSuffix(text, "\nON CONFLICT DO NOTHING") {
				t.Errorf("statement for %d rows: %s", n, text)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("batch of %d: statements of %v rows, want %v", tc.batch, got, tc.want)
		}
	}
}
