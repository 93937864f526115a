package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/migration/migrationtest"
)

// migratedBefore makes the store file with the migrations numbered below
// version applied: the store a target of an older release left.
func migratedBefore(t *testing.T, file, version string) (write, read *sql.DB) {
	t.Helper()
	v, err := strconv.Atoi(version)
	if err != nil {
		t.Fatal(err)
	}
	return migrationtest.OpenBefore(t, file, "FULL", migrations, "migrations", v)
}

// A target's store left at each earlier migration, holding what a target
// holds (its enlistment and cursor, a job, an ack the master has not
// confirmed, a schedule's last fire, a run the master has and one it has
// not, each with output), keeps all of it through the upgrade: the run
// not uploaded yet goes to the master with its output, the one uploaded
// does not go again, and both show their output.
func TestOlderStoreUpgrades(t *testing.T) {
	ctx := context.Background()
	started := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	lastFire := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	job := muster.NewJob()
	job.Name, job.Steps = "backup", []muster.Step{{Name: "dump", Shell: "pg_dump"}, {Name: "ship", Shell: "rsync"}}
	job.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 3 * * *"}}
	def, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	run := func(id string) muster.Run {
		finished := started.Add(90 * time.Second)
		return muster.Run{Job: "backup", Target: "web1", RunID: id, Status: muster.RunSucceeded, Trigger: muster.TriggerSchedule,
			StartedAt: started, FinishedAt: &finished, DurationMS: 90_000,
			Steps: []muster.StepAttempt{
				{Name: "dump", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: started, Output: "dumped 12 tables\n"},
				{Name: "ship", Attempt: 1, Status: muster.AttemptSucceeded, StartedAt: started, Output: "sent 1.2 GB ✓\n"},
			}}
	}
	levels := []string{"0002", "0004", "0005", "0006", "9999"}
	for _, level := range levels {
		t.Run("before "+level, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), StoreFile)
			write, read := migratedBefore(t, file, level)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := write.ExecContext(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			for k, v := range map[string]string{keyMasterURL: "https://m1.example.com:7070", keyName: "web1", keyUID: "u1", keyEpoch: "e1",
				keyCursor: "41", keyMaster: "m1", keyPollInterval: "30", keyEnlistedAt: "1700000000000"} {
				exec(`INSERT INTO state (key, value) VALUES (?, ?)`, k, v)
			}
			exec(`INSERT INTO jobs (name, version, definition, updated_at) VALUES ('backup', 3, ?, 1700000000000)`, string(def))
			exec(`INSERT INTO acks (seq, ok, error) VALUES (41, 0, 'job "gone" is not held')`)
			if level > "0002" {
				exec(`INSERT INTO schedule_state (job, schedule, last_fire) VALUES ('backup', 'nightly', ?)`, lastFire.UnixNano())
			}
			for _, r := range []struct {
				run      muster.Run
				uploaded int64
			}{{run("sent"), 2}, {run("unsent"), 1}} {
				stored := r.run
				if level > "0006" { // output in chunks, not in the run
					stored.Steps = slices.Clone(stored.Steps)
					for i := range stored.Steps {
						stored.Steps[i].Output = ""
					}
				}
				data, err := json.Marshal(stored)
				if err != nil {
					t.Fatal(err)
				}
				exec(`INSERT INTO runs (run_id, job, status, revision, uploaded_revision, data, started_at) VALUES (?, 'backup', 'succeeded', 2, ?, ?, ?)`,
					r.run.RunID, r.uploaded, string(data), started.UnixMilli())
				if level > "0006" {
					var last int64
					for i, s := range r.run.Steps {
						res, err := write.ExecContext(ctx, `INSERT INTO output (run_id, attempt, offset, data) VALUES (?, ?, 0, ?)`, r.run.RunID, i, s.Output)
						if err != nil {
							t.Fatal(err)
						}
						last, _ = res.LastInsertId()
					}
					if r.uploaded == 2 {
						exec(`UPDATE runs SET uploaded_output = ? WHERE run_id = ?`, last, r.run.RunID)
					}
				}
			}
			if level > "0004" {
				exec(`INSERT INTO events (enlistment, name, severity, job, message, at) VALUES ('u1', 'job.failed', 3, 'backup', 'boom', 1700000000000)`)
			}
			write.Close()
			read.Close()

			s, err := openStore(ctx, file, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			enl, ok, err := s.enlistment(ctx)
			if err != nil || !ok || enl.Name != "web1" || enl.UID != "u1" || enl.Epoch != "e1" || enl.Cursor != 41 || enl.PollInterval != 30 ||
				!slices.Equal(enl.Masters, []string{"https://m1.example.com:7070"}) || enl.EnlistedAt.UnixMilli() != 1700000000000 {
				t.Errorf("enlistment %+v, %v, %v", enl, ok, err)
			}
			if j, ok, err := s.job(ctx, s.read, "backup"); err != nil || !ok || j.Version != 3 || len(j.Steps) != 2 || j.Steps[1].Shell != "rsync" {
				t.Errorf("job backup: %+v, %v, %v", j, ok, err)
			}
			if acks, err := s.pendingAcks(ctx); err != nil || len(acks) != 1 || acks[0].Seq != 41 || acks[0].OK || acks[0].Error != `job "gone" is not held` {
				t.Errorf("pending acks %+v, %v", acks, err)
			}
			if held, err := s.scheduledJobs(ctx); err != nil || len(held) != 1 || level > "0002" && !held[0].lastFire["nightly"].Equal(lastFire) {
				t.Errorf("scheduled jobs %+v, %v; want backup last fired at %s", held, err, lastFire)
			}
			up, err := s.unsentRuns(ctx, defaultUploadLimits())
			if err != nil {
				t.Fatal(err)
			}
			want := "unsent@2 0:0:dumped 12 tables\n 1:0:sent 1.2 GB ✓\n"
			if got := strings.Join(sent(up), " "); got != want {
				t.Errorf("upload %q, want %q", got, want)
			}
			if err := s.markUploaded(ctx, up, acceptAll(up)); err != nil {
				t.Fatal(err)
			}
			if up, err := s.unsentRuns(ctx, defaultUploadLimits()); err != nil || len(up.reports) != 0 {
				t.Errorf("after the upload: %q, %v", sent(up), err)
			}
			local, err := s.localRuns(ctx)
			if err != nil || len(local) != 2 {
				t.Fatalf("local runs %+v, %v", local, err)
			}
			for _, lr := range local {
				if !lr.Uploaded || len(lr.Steps) != 2 || lr.Steps[0].Output != "dumped 12 tables\n" || lr.Steps[1].Output != "sent 1.2 GB ✓\n" {
					t.Errorf("local run %s: uploaded %v, steps %+v", lr.RunID, lr.Uploaded, lr.Steps)
				}
			}
			if level > "0004" {
				if events, err := s.unsentEvents(ctx); err != nil || len(events) != 1 || events[0].Message != "boom" {
					t.Errorf("unsent events %+v, %v", events, err)
				}
			}
		})
	}
}

// A long output kept in a run before migration 0006 is moved in chunks
// the target's limits allow, each starting where the one before it ended,
// in bytes.
func TestOlderStoreMovesLongOutputInChunks(t *testing.T) {
	t.Run("text", func(t *testing.T) { testOlderStoreMovesLongOutput(t, strings.Repeat("é", 300_000)) }) // 600,000 bytes
	// A NUL is a character of the output as any other: what follows it
	// is moved too.
	t.Run("with a NUL", func(t *testing.T) { testOlderStoreMovesLongOutput(t, "a\x00"+strings.Repeat("é", 300_000)) })
	// Chunks of a longer one end before a character, whichever byte of
	// one the limit falls on.
	t.Run("cut in a character", func(t *testing.T) { testOlderStoreMovesLongOutput(t, "\x00"+strings.Repeat("é", 1_100_000)) })
	t.Run("cut in a character of three bytes", func(t *testing.T) {
		testOlderStoreMovesLongOutput(t, "a\x00"+strings.Repeat("€", 800_000)+"\x00end")
	})
	t.Run("cut before a character", func(t *testing.T) { testOlderStoreMovesLongOutput(t, strings.Repeat("x", 3<<20)) })
}

func testOlderStoreMovesLongOutput(t *testing.T, out string) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), StoreFile)
	write, read := migratedBefore(t, file, "0006")
	r := muster.Run{Job: "j", Target: "web1", RunID: "r1", Status: muster.RunFailed, StartedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Steps: []muster.StepAttempt{{Name: "a", Attempt: 1, Status: muster.AttemptFailed, Output: out}}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := write.ExecContext(ctx, `INSERT INTO runs (run_id, job, status, revision, data, started_at) VALUES ('r1', 'j', 'failed', 1, ?, 0)`, string(data)); err != nil {
		t.Fatal(err)
	}
	write.Close()
	read.Close()
	s, err := openStore(ctx, file, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lim := defaultUploadLimits()
	var got string
	for range 3 {
		up, err := s.unsentRuns(ctx, lim)
		if err != nil {
			t.Fatal(err)
		}
		if len(up.reports) == 0 {
			break
		}
		for _, c := range up.reports[0].Output {
			if c.Attempt != 0 || c.Offset != int64(len(got)) || len(c.Data) > maxStoredChunk || !utf8.ValidString(c.Data) {
				t.Fatalf("chunk at %d of attempt %d, %d bytes, after %d bytes", c.Offset, c.Attempt, len(c.Data), len(got))
			}
			got += c.Data
		}
		if err := s.markUploaded(ctx, up, acceptAll(up)); err != nil {
			t.Fatal(err)
		}
	}
	if got != out {
		t.Errorf("uploaded %d bytes of output, want the %d", len(got), len(out))
	}
}

// A store a newer target has migrated is refused by an older one, which
// does not know its schema, with a message naming both schemas.
func TestNewerStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), StoreFile)
	s, err := openStore(ctx, file, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	var latest int
	if err := s.read.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, latest+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = openStore(ctx, file, time.Now)
	if err == nil {
		s.Close()
	}
	want := fmt.Sprintf("schema %d; this muster knows up to %d", latest+1, latest)
	if muster.ErrorCode(err) != muster.EUNSUPPORTED || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("opening a store of schema %d: %v (code %q); want %s, saying %q", latest+1, err, muster.ErrorCode(err), muster.EUNSUPPORTED, want)
	}
}

// Every migration of a target's store applies to a store with rows in
// each of its tables, as one a target has used for a while has, and keeps
// them.
func TestMigrationsApplyToAFilledStore(t *testing.T) {
	migrationtest.Stepwise(t, filepath.Join(t.TempDir(), "target.db"), "FULL", migrations, "migrations")
}
