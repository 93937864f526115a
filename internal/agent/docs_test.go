package agent

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every target settings file shown in the docs loads.
func TestDocumentedSettingsLoad(t *testing.T) {
	n := 0
	for _, page := range []string{"jobs.md", "operations.md", "protocol.md", "alerts.md"} {
		doc, err := os.ReadFile(filepath.Join("../../docs", page))
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
			if strings.HasPrefix(b[1], "jobs:") {
				continue
			}
			n++
			path := filepath.Join(t.TempDir(), "settings.yaml")
			os.WriteFile(path, []byte(b[1]), 0o600)
			if _, err := LoadSettings(path); err != nil {
				t.Errorf("%s block %d: %v", page, i, err)
			}
		}
	}
	if n < 3 {
		t.Errorf("found %d settings examples in the docs; there are more", n)
	}
}
