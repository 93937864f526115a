package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// An operator's webhook often carries its credential in its path (a chat
// service's incoming webhook): a key below admin sees only its scheme and
// host, in the operators, their notifications and the audit log. An admin
// sees it whole.
func TestWebhookShownWholeOnlyToAdmins(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	const hook = "https://hooks.example.com/services/T0001/B0001/s3cr3tT0ken"
	if _, err := env.Client.CreateOperator(ctx, httpapi.OperatorRequest{Name: "chat", Webhook: hook}); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, c := range []struct {
		role  string
		whole bool
	}{{catalog.RoleReader, false}, {catalog.RoleOperator, false}, {catalog.RoleAdmin, true}} {
		client, _ := keyClient(t, env, httpapi.KeyRequest{Name: "k-" + c.role, Role: c.role})
		ops, err := client.Operators(ctx)
		if err != nil {
			t.Fatal(err)
		}
		op, err := client.Operator(ctx, "chat")
		if err != nil {
			t.Fatal(err)
		}
		audit, err := client.Audit(ctx, httpapi.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		seen, _ := json.Marshal([]any{ops, op, audit})
		if got := strings.Contains(string(seen), "s3cr3tT0ken"); got != c.whole && c.role != catalog.RoleAdmin {
			t.Errorf("the %s key sees the webhook's path: %s", c.role, seen)
		}
		want := "https://hooks.example.com/…"
		if c.whole {
			want = hook
		}
		if op.Webhook != want {
			t.Errorf("the %s key sees the webhook as %q, want %q", c.role, op.Webhook, want)
		}
		checked++
	}
	if checked != 3 {
		t.Fatalf("checked %d roles, want 3", checked)
	}
}
