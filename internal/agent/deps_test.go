package agent_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent runs on every target: it must not link the master's catalog,
// its stores or its operator API, which a target never uses.
func TestAgentDoesNotLinkTheMaster(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/musterhq/muster/internal/agent").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps named %d packages, fewer than the agent imports directly: %q", len(deps), deps)
	}
	for _, d := range deps {
		for _, banned := range []string{"/internal/catalog", "/internal/httpapi", "/internal/master", "/internal/console"} {
			if strings.Contains(d, "github.com/musterhq/muster"+banned) {
				t.Errorf("the agent links %s", d)
			}
		}
	}
}
