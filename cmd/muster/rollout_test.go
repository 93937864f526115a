package main

import (
	"os"
	"testing"
)

func TestBarLine(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 4, "wave 1/2 0/4 [        ]   0 %"},
		{1, 4, "wave 1/2 1/4 [==      ]  25 %"},
		{3, 4, "wave 1/2 3/4 [======  ]  75 %"},
		{4, 4, "wave 1/2 4/4 [========] 100 %"},
		{9, 4, "wave 1/2 4/4 [========] 100 %"},  // more reported than the wave holds
		{-1, 4, "wave 1/2 0/4 [        ]   0 %"}, // never below nothing
		{0, 0, "wave 1/2 0/0 [========] 100 %"},  // an empty wave is done
	} {
		if got := barLine("wave 1/2", tc.done, tc.total, 8); got != tc.want {
			t.Errorf("barLine(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestProgressBarOnlyOnTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	progress, finish := progressBar(w, "wave 1/1", 3)
	if progress != nil {
		t.Error("progressBar on a pipe returned a progress function; want none")
	}
	finish()
	w.Close()
	if b, _ := r.Read(make([]byte, 1)); b != 0 {
		t.Errorf("progressBar on a pipe wrote %d byte(s); want none", b)
	}
}
