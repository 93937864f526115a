// Package migration reads the numbered migrations a store embeds: files
// DIR/NNNN_name.sql, applied in the order of their numbers.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// File is one migration: its path in the embedded files, its base name
// and its number.
type File struct {
	Path    string
	Name    string
	Version int
}

// List returns the migrations in dir of fsys, in order.
func List(fsys fs.FS, dir string) ([]File, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	files := make([]File, len(names))
	for i, name := range names {
		base := path.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: the name must start with a number", name)
		}
		files[i] = File{Path: name, Name: base, Version: v}
	}
	return files, nil
}

// Latest is the number of the last migration in dir of fsys: the schema a
// build that embeds them knows. It is 0 when there is none, or when a name
// does not start with a number (which List reports).
func Latest(fsys fs.FS, dir string) int {
	files, err := List(fsys, dir)
	if err != nil {
		return 0
	}
	return Newest(files)
}

// Newest returns the largest version in files, or 0.
func Newest(files []File) int {
	newest := 0
	for _, f := range files {
		newest = max(newest, f.Version)
	}
	return newest
}
