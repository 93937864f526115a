package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
)

// devVersion is muster.Version in a build that was not stamped with a
// release.
const devVersion = "0.1.0-dev"

// pseudoVersion matches the version Go gives a module built from an
// untagged commit (v0.0.0-20261207110305-5edeefdfe448): the commit says it
// better.
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}`)

// buildVersion is the version of this build: stamped, the release it was
// stamped with (-ldflags -X); else the module's version when it was built
// by go install of a tagged release; else the commit it was built from,
// with .dirty when its tree had changes, when the Go toolchain recorded it
// (go build in a git checkout, -buildvcs not false). Two builds of the
// same tree otherwise report the same version, and a fleet half upgraded
// could not tell its targets apart.
func buildVersion(stamped string, bi *debug.BuildInfo) string {
	if stamped != devVersion || bi == nil {
		return stamped
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" && !pseudoVersion.MatchString(v) {
		return strings.TrimPrefix(v, "v")
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return stamped
	}
	v := stamped + "+" + rev[:min(len(rev), 12)]
	if dirty {
		v += ".dirty"
	}
	return v
}

func init() {
	bi, _ := debug.ReadBuildInfo()
	muster.Version = buildVersion(muster.Version, bi)
}

// versionText is what muster --version prints: the version, the protocol
// the build speaks to targets and those it accepts, and the schemas of the
// catalog and of a target's store it knows (a catalog or store of a newer
// schema is refused).
func versionText() string {
	return fmt.Sprintf("muster version %s\nprotocol %d (accepts targets of protocols %d to %d)\ncatalog schema %d (SQLite), %d (PostgreSQL); target store schema %d\n",
		muster.Version, agentproto.Version, agentproto.MinVersion, agentproto.Version,
		sqlitestore.LatestMigration(), pgstore.LatestMigration(), agent.StoreSchema())
}
