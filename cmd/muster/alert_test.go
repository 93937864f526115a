package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/musterhq/muster/internal/testenv"
)

// setupAlertScript gives a script a webhook receiver, as $WEBHOOK_URL.
func setupAlertScript(t *testing.T, e *testscript.Env) {
	e.Setenv("WEBHOOK_URL", testenv.NewWebhookReceiver(t).URL)
}
