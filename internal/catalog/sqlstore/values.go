package sqlstore

import (
	"math/bits"
	"strings"
	"sync"
)

// SQLite stores many rows in one statement fastest with a row of bound
// parameters each, "VALUES (?, …), (?, …)": a row passed inside one JSON
// parameter instead is written as text, parsed back and unquoted column
// by column, which cost the upload of runs more than storing them. The
// parameters are anonymous ("?"): the driver looks up the name of every
// numbered one ("$n") among all those before it, at every bind.

// maxValuesRows bounds the rows of one statement, within SQLite's limit on
// parameters (32766) at up to 16 columns a row.
const maxValuesRows = 128

// valuesInsert is one INSERT for 1, 2, 4, … up to maxValuesRows rows of
// bound parameters: a handful of texts, each prepared once, serve a batch
// of any length. The texts are written when first used, not when the
// program starts: a target or the CLI, the same binary, never uses them.
type valuesInsert struct {
	cols       int // parameters a row
	head, tail string

	once  sync.Once
	texts []string // texts[k] stores 2^k rows
}

// newValuesInsert returns the statements head + "VALUES (?, …), …" + tail
// for rows of cols parameters.
func newValuesInsert(head string, cols int, tail string) *valuesInsert {
	return &valuesInsert{cols: cols, head: head, tail: tail}
}

// rows returns how many of n rows the next statement stores: the largest
// power of two not over n or maxValuesRows.
func (v *valuesInsert) rows(n int) int {
	return 1 << (bits.Len(uint(min(n, maxValuesRows))) - 1)
}

// text returns the statement for n rows, a count rows returned.
func (v *valuesInsert) text(n int) string {
	v.once.Do(func() {
		row := "(?" + strings.Repeat(", ?", v.cols-1) + ")"
		for n := 1; n <= maxValuesRows; n *= 2 {
			v.texts = append(v.texts, v.head+" VALUES "+row+strings.Repeat(", "+row, n-1)+"\n"+v.tail)
		}
	})
	return v.texts[bits.Len(uint(n))-1]
}
