package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/musterhq/muster/internal/testenv"
)

// setupAlertScript gives a script a webhook receiver, as $WEBHOOK_URL.
func setupAlertScript(t *testing.T, e *testscript.Env) {
	e.Setenv("WEBHOOK_URL", testenv.NewWebhookReceiver(t).URL)
}

// scriptCmds are the commands scripts have besides testscript's own.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"eventually": eventually,
}

// eventually REGEXP PROGRAM [ARGS...] runs the program again and again until
// its stdout matches, for what the master does in the background (sending a
// notification); stdout and stderr are then the last run's.
func eventually(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: eventually REGEXP PROGRAM [ARGS...]")
	}
	re, err := regexp.Compile(`(?m)` + args[0])
	ts.Check(err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ts.Exec(args[1], args[2:]...)
		if err == nil && re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no match for %q in the output of %q within 20s (last error: %v)", args[0], args[1:], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
