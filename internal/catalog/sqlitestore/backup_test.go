package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
	"github.com/musterhq/muster/internal/sqlite"
)

var admin = muster.Actor{Kind: muster.ActorKey, Name: "admin", Role: catalog.RoleAdmin}

func shellJob(name string) muster.Job {
	return muster.Job{Name: name, Enabled: true, Steps: []muster.Step{{Name: "s", Shell: "true"}}}
}

// openCatalog opens a catalog at path, closed at the end of the test.
func openCatalog(t *testing.T, path string) *catalog.Catalog {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Open(context.Background(), s, catalog.Options{})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// count runs a COUNT query on the SQLite file at path.
func count(t *testing.T, path, query string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.URI(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A backup taken while a master writes the catalog is one consistent
// snapshot: every job in it comes with the audit entry committed in the
// same transaction, and the catalog goes on taking changes.
func TestBackupWhileTheCatalogIsWritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	c := openCatalog(t, path)
	for i := range 20 {
		if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob(fmt.Sprintf("before-%d", i))}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	applied, first := 0, make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob(fmt.Sprintf("during-%d", i))}, catalog.ApplyOptions{}, admin); err != nil {
				t.Error(err)
				if applied == 0 {
					close(first)
				}
				return
			}
			if applied++; applied == 1 {
				close(first)
			}
		}
	})
	<-first
	taken := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	var snaps []sqlitestore.Snapshot
	for i := range 3 {
		snap, err := sqlitestore.Backup(ctx, path, filepath.Join(dir, fmt.Sprintf("backup-%d.db", i)), taken)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
		snaps = append(snaps, snap)
	}
	close(stop)
	wg.Wait()
	for i, snap := range snaps {
		jobs := count(t, snap.Path, `SELECT COUNT(*) FROM jobs`)
		audited := count(t, snap.Path, `SELECT COUNT(*) FROM audit WHERE action = ?`, muster.AuditJobCreate)
		if jobs != audited || jobs < 20 || jobs != snap.Jobs {
			t.Errorf("backup %d: %d jobs, %d job.create entries, Snapshot.Jobs %d; want equal, at least 20", i, jobs, audited, snap.Jobs)
		}
		if !snap.TakenAt.Equal(taken) {
			t.Errorf("backup %d: TakenAt %v, want %v", i, snap.TakenAt, taken)
		}
		if fi, err := os.Stat(snap.Path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("backup %d: %v, mode %v; want a file private to its owner", i, err, fi.Mode().Perm())
		}
		if _, err := os.Stat(snap.Path + ".partial"); !os.IsNotExist(err) {
			t.Errorf("backup %d: the partial file is left: %v", i, err)
		}
	}
	// The master still takes changes: the backups held off no writer.
	if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob("after")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
}

// A backup is never written over a file, nor taken of something that is
// not a catalog; a catalog from a newer muster is not restored.
func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	openCatalog(t, path)
	now := time.Now()
	existing := filepath.Join(dir, "existing.db")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlitestore.Backup(ctx, path, existing, now); muster.ErrorCode(err) != muster.ECONFLICT {
		t.Errorf("backup over an existing file: %v, want ECONFLICT", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("the existing file now holds %q", b)
	}
	if _, err := sqlitestore.Backup(ctx, filepath.Join(dir, "none.db"), filepath.Join(dir, "b.db"), now); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("backup of no catalog: %v, want EINVALID", err)
	}
	if _, err := sqlitestore.Backup(ctx, path, filepath.Join(dir, "no", "such", "b.db"), now); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("backup into no directory: %v, want EINVALID", err)
	}
	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", "file:"+other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlitestore.Backup(ctx, other, filepath.Join(dir, "b.db"), now); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("backup of a database that is not a catalog: %v, want EINVALID", err)
	}
	if _, _, err := sqlitestore.Restore(ctx, other, filepath.Join(dir, "restored.db"), now); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("restore of a database that is not a catalog: %v, want EINVALID", err)
	}
	if _, _, err := sqlitestore.Restore(ctx, existing, filepath.Join(dir, "restored.db"), now); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("restore of a file that is not a database: %v, want EINVALID", err)
	}

	newer := filepath.Join(dir, "newer.db")
	if _, err := sqlitestore.Backup(ctx, path, newer, now); err != nil {
		t.Fatal(err)
	}
	db, err = sql.Open("sqlite", "file:"+newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, _, err := sqlitestore.Restore(ctx, newer, filepath.Join(dir, "restored.db"), now); muster.ErrorCode(err) != muster.EUNSUPPORTED {
		t.Errorf("restore of a newer muster's catalog: %v, want EUNSUPPORTED", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "restored.db")); !os.IsNotExist(err) {
		t.Errorf("a refused restore left a catalog: %v", err)
	}
}

// A restore is refused while a master uses the catalog. Once it is
// stopped, the backup takes the catalog's place with a new epoch; the
// catalog it replaced is kept, with the changes still in its log.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Open(ctx, s, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob("kept")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	oldEpoch := c.Epoch()
	backup := filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, path, backup, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob("after-backup")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	if _, _, err := sqlitestore.Restore(ctx, backup, path, now); muster.ErrorCode(err) != muster.ECONFLICT {
		t.Fatalf("restore while the catalog is open: %v, want ECONFLICT", err)
	}
	c.Close()
	snap, replaced, err := sqlitestore.Restore(ctx, backup, path, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".replaced-20261207T103000Z"; replaced != want {
		t.Errorf("the replaced catalog was kept as %q, want %q", replaced, want)
	}
	if snap.Jobs != 1 {
		t.Errorf("restored %d jobs, want 1", snap.Jobs)
	}
	if _, err := os.Stat(backup); err != nil {
		t.Errorf("the backup itself is gone: %v", err)
	}
	if n := count(t, replaced, `SELECT COUNT(*) FROM jobs WHERE name = 'after-backup'`); n != 1 {
		t.Errorf("the replaced catalog has %d of the change made after the backup, want 1", n)
	}
	if n := count(t, path, `SELECT COUNT(*) FROM jobs WHERE name = 'kept'`); n != 1 {
		t.Errorf("the restored catalog has %d of the job applied before the backup, want 1", n)
	}
	if n := count(t, path, `SELECT COUNT(*) FROM jobs WHERE name = 'after-backup'`); n != 0 {
		t.Errorf("the restored catalog has %d of the job applied after the backup, want 0", n)
	}
	if c = openCatalog(t, path); c.Epoch() == oldEpoch {
		t.Error("the restored catalog kept its epoch: targets would trust cursors the backup is behind")
	}
}

// backedUp makes a catalog in dir holding the job kept, backs it up, and
// then applies the job then: the catalog (open), its path and the
// backup's.
func backedUp(t *testing.T, dir, then string) (c *catalog.Catalog, path, backup string) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(dir, "catalog.db")
	c = openCatalog(t, path)
	if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob("kept")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	backup = filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, path, backup, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob(then)}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	return c, path, backup
}

// Two restores within the same second (a wrong backup put back, then the
// right one at once, or a script) each keep the catalog they replace: the
// second does not write over the first one's, which may be the only copy
// of the catalog as it was before either.
func TestRestoreTwiceInASecondKeepsBothCatalogs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, path, backup := backedUp(t, dir, "after-backup")
	c.Close()

	now := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	_, first, err := sqlitestore.Restore(ctx, backup, path, now)
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := sqlitestore.Restore(ctx, backup, path, now.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatalf("both restores kept the catalog they replaced as %s", first)
	}
	if n := count(t, first, `SELECT COUNT(*) FROM jobs WHERE name = 'after-backup'`); n != 1 {
		t.Errorf("%s, the catalog the first restore replaced, has %d of the change made after the backup, want 1", first, n)
	}
	if n := count(t, second, `SELECT COUNT(*) FROM jobs WHERE name = 'after-backup'`); n != 0 {
		t.Errorf("%s, the catalog the second restore replaced, has %d of the change made after the backup, want 0", second, n)
	}
}

// A restore from a catalog file whose latest changes are still in its
// write-ahead log beside it (the catalog a restore replaced after the
// master crashed, kept with its log, which the operator puts back) restores
// those changes too: what SQLite reads in the file, not the file's bytes
// alone.
func TestRestoreFromACatalogWithItsLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	c := openCatalog(t, live)
	if _, err := c.ApplyJobs(ctx, []muster.Job{shellJob("in-the-log")}, catalog.ApplyOptions{}, admin); err != nil {
		t.Fatal(err)
	}
	// The files as a crash leaves them: the log not copied back into the
	// catalog file.
	crashed := filepath.Join(dir, "catalog.db.replaced-20261207T103000Z")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(live + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(crashed + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the catalog's log: %v, %v; want the changes in it", fi, err)
	}
	c.Close()

	path := filepath.Join(dir, "catalog.db")
	snap, _, err := sqlitestore.Restore(ctx, crashed, path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Jobs != 1 {
		t.Errorf("the restore says it restored %d jobs, want 1", snap.Jobs)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if snap.Bytes != fi.Size() {
		t.Errorf("the restore says it restored %d bytes; the catalog has %d", snap.Bytes, fi.Size())
	}
	if n := count(t, path, `SELECT COUNT(*) FROM jobs WHERE name = 'in-the-log'`); n != 1 {
		t.Errorf("the restored catalog has %d of the job in the log, want 1", n)
	}
}

// A restore where the catalog file is gone but its write-ahead log is not
// (the file removed after a crash, the log left) moves the log aside too:
// left beside the restored catalog, it would be replayed into it at the
// master's start, mixing the lost catalog's pages into the backup's.
func TestRestoreMovesAsideALogWithoutItsCatalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, path, backup := backedUp(t, dir, "in-the-log")
	// The log as a crash leaves it.
	logs := map[string][]byte{}
	for _, suffix := range []string{"-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		logs[suffix] = b
	}
	c.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for suffix, b := range logs {
		if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	_, replaced, err := sqlitestore.Restore(ctx, backup, path, time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); !os.IsNotExist(err) {
			t.Errorf("%s is left beside the restored catalog: %v", filepath.Base(path+suffix), err)
		}
	}
	if replaced == "" {
		t.Error("the restore says it replaced nothing; the log it moved aside is not named")
	} else if _, err := os.Stat(replaced + "-wal"); err != nil {
		t.Errorf("the log was not kept as %s-wal: %v", filepath.Base(replaced), err)
	}
	if n := count(t, path, `SELECT COUNT(*) FROM jobs WHERE name = 'in-the-log'`); n != 0 {
		t.Errorf("the restored catalog has %d of the job in the old log, want 0", n)
	}
	if n := count(t, path, `SELECT COUNT(*) FROM jobs WHERE name = 'kept'`); n != 1 {
		t.Errorf("the restored catalog has %d of the job in the backup, want 1", n)
	}
}

// A backup is written to, and a restore puts the catalog at, the very
// paths named, whatever characters they hold ('#', '?' and '%' mean
// something in the URIs SQLite opens files by): not to another file, nor
// refused for a table missing from a file made by mistake.
func TestBackupAndRestoreAtPathsWithURICharacters(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "muster#2 %41?")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, path, backup := backedUp(t, dir, "after-backup")
	again := filepath.Join(dir, "again#1?.db")
	snap, err := sqlitestore.Backup(ctx, path, again, time.Now())
	if err != nil {
		t.Fatalf("backup to %s: %v", again, err)
	}
	if snap.Jobs != 2 {
		t.Errorf("the backup holds %d jobs, want 2", snap.Jobs)
	}
	restored := filepath.Join(dir, "restored%25.db")
	if _, _, err := sqlitestore.Restore(ctx, backup, restored, time.Now()); err != nil {
		t.Fatalf("restore to %s: %v", restored, err)
	}
	if n := count(t, restored, `SELECT COUNT(*) FROM jobs WHERE name = 'kept'`); n != 1 {
		t.Errorf("the restored catalog has %d of the job backed up, want 1", n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"again#1?.db", "backup.db", "catalog.db", "catalog.db-lock", "catalog.db-shm", "catalog.db-wal", "restored%25.db", "restored%25.db-lock"}
	if !slices.Equal(names, want) {
		t.Errorf("%s holds %q, want %q", dir, names, want)
	}
}
