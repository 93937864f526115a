package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/agentproto"
)

// A build says which it is: the release stamped in it (-ldflags -X), or
// else the module version go install recorded, or the commit it was
// built from, so that the targets of a fleet half upgraded tell apart
// by the version they report.
func TestBuildVersion(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	for _, tc := range []struct {
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"1.4.0", vcs("da9b37c0123456789", "false"), "1.4.0"},
		{devVersion, &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "1.4.0"},
		{devVersion, vcs("da9b37c0123456789", "false"), devVersion + "+da9b37c01234"},
		{devVersion, vcs("da9b37c0123456789", "true"), devVersion + "+da9b37c01234.dirty"},
		{devVersion, &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207110305-5edeefdfe448+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "5edeefdfe44825b04231d0010edf0a84b509b9ab"}, {Key: "vcs.modified", Value: "true"}}},
			devVersion + "+5edeefdfe448.dirty"},
		{devVersion, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, devVersion},
		{devVersion, nil, devVersion},
	} {
		if got := buildVersion(tc.stamped, tc.info); got != tc.want {
			t.Errorf("buildVersion(%q, %+v) = %q, want %q", tc.stamped, tc.info, got, tc.want)
		}
	}
}

// muster --version names the protocol the build speaks and the schemas it
// knows, which an upgrade's order and a downgrade depend on.
func TestVersionNamesProtocolAndSchemas(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		fmt.Sprintf("protocol %d (accepts targets of protocols %d to %d)", agentproto.Version, agentproto.MinVersion, agentproto.Version),
		"catalog schema ", "target store schema ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("muster --version printed %q, want it to say %q", out.String(), want)
		}
	}
}

// The output of muster --version the docs show names the protocol and
// schemas of this build, as the command run by a reader of the docs
// prints them: an upgrade's order and the refusal of a newer catalog are
// read off them.
func TestDocumentedVersionIsThisBuilds(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("muster --version printed %q, want 3 lines", out.String())
	}
	shown := 0
	for _, page := range []string{"../../docs/operations.md", "../../docs/runbooks/upgrade.md"} {
		doc, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range regexp.MustCompile("(?s)```\nmuster version [^\n]*\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
			shown++
			if got := strings.Split(strings.TrimSpace(b[1]), "\n"); !slices.Equal(got, lines[1:]) {
				t.Errorf("%s shows muster --version saying %q; this build says %q", filepath.Base(page), got, lines[1:])
			}
		}
	}
	if shown < 2 {
		t.Errorf("found muster --version's output %d times in the docs, want 2", shown)
	}
}
