package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/httpapi"
)

// pageFlags are the flags of a command that prints a list the master
// gives a page at a time: --cursor reads on from where a page ended,
// --all reads every page.
type pageFlags struct {
	cursor string
	all    bool
	// size is how many entries each request of --all reads when --limit
	// is not given.
	size int
}

// register adds --cursor and --all, whose requests read size entries at
// a time unless --limit says otherwise.
func (p *pageFlags) register(cmd *cobra.Command, noun string, size int) {
	p.size = size
	fl := cmd.Flags()
	fl.StringVar(&p.cursor, "cursor", "", "read on from where a page ended: the cursor printed after it")
	fl.BoolVar(&p.all, "all", false, "read every "+noun+", page by page (--limit, else "+fmt.Sprint(size)+", at a time), not only the newest --limit")
}

// pageSize returns the limit of each request: with --all, --limit when it
// was given, else the size registered.
func (p *pageFlags) pageSize(cmd *cobra.Command, limit int) int {
	if p.all && !cmd.Flags().Changed("limit") {
		return p.size
	}
	return limit
}

// listPages prints, as printPages does, what read gives, in the format
// the command's flags ask for, from the master they name; each request
// reads *limit entries, or, with --all, the size pageSize says.
func listPages[T any](cmd *cobra.Command, cf *clientFlags, p *pageFlags, limit *int, read func(c *httpapi.Client, cursor string) ([]T, string, error), table func(io.Writer, []T) error) error {
	format, err := cf.format()
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	*limit = p.pageSize(cmd, *limit)
	return printPages(cmd, p, format, func(cursor string) ([]T, string, error) { return read(c, cursor) }, table)
}

// printPages reads pages with read, from --cursor on, and prints them in
// format: with --all every page, as one JSON array or YAML sequence, each
// page as it comes, or as one table (its columns aligned over every page,
// so printed at the end); else one page, and then, on stderr, the
// command that reads on when entries remain. A page is read with the
// cursor of the one before, so each entry recorded before the first page
// is printed once, however many are recorded meanwhile.
func printPages[T any](cmd *cobra.Command, p *pageFlags, format string, read func(cursor string) ([]T, string, error), table func(io.Writer, []T) error) error {
	w := cmd.OutOrStdout()
	cursor, n := p.cursor, 0
	var rows []T // of a table
	for {
		page, next, err := read(cursor)
		if err != nil {
			return err
		}
		if !p.all {
			if err := printAs(w, format, page, func(w io.Writer) error { return table(w, page) }); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more entries are older than these: read on with --cursor %s, or read all with --all\n", next)
			}
			return nil
		}
		if format == outputTable {
			rows = append(rows, page...)
		} else if err := printPage(w, format, page, n); err != nil {
			return err
		}
		n += len(page)
		if next == "" {
			break
		}
		cursor = next
	}
	switch {
	case format == outputJSON && n == 0:
		_, err := io.WriteString(w, "[]\n")
		return err
	case format == outputJSON:
		_, err := io.WriteString(w, "\n]\n")
		return err
	case format == outputYAML && n == 0:
		_, err := io.WriteString(w, "[]\n")
		return err
	case format == outputTable:
		return table(w, rows)
	}
	return nil
}

// printPage prints one page of --all, after n entries printed before it:
// the entries of a JSON array as printJSON indents them, or a YAML
// sequence's items.
func printPage[T any](w io.Writer, format string, page []T, n int) error {
	if len(page) == 0 {
		return nil
	}
	switch format {
	case outputJSON:
		for i, v := range page {
			b, err := json.MarshalIndent(v, "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if n+i == 0 {
				sep = "[\n  "
			}
			if _, err := io.WriteString(w, sep); err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	return printYAML(w, page)
}
