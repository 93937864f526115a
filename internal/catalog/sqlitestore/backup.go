package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/dirlock"
	"github.com/musterhq/muster/internal/migration"
	"github.com/musterhq/muster/internal/sqlite"
)

// CatalogPath returns the path a flag's sqlite:PATH names, or an error
// naming the flag.
func CatalogPath(flag, value string) (string, error) {
	path, ok := strings.CutPrefix(value, "sqlite:")
	if !ok || path == "" {
		return "", muster.Errorf(muster.EINVALID, "%s: %q is not sqlite:PATH, the catalog.db of a master's data directory", flag, value)
	}
	return path, nil
}

// Snapshot describes a catalog file: a backup, or the catalog a backup
// was taken of.
type Snapshot struct {
	Path    string
	Schema  int       // the last migration applied
	TakenAt time.Time // when the backup was taken; zero for a live catalog
	Bytes   int64
	Targets int // enlisted, not defected
	Jobs    int
	Runs    int
}

// backupTakenAt is the meta key a backup records the time it was taken
// under; the catalog itself never has it.
const backupTakenAt = "backup_taken_at"

// Backup writes a consistent copy of the catalog at path to dst, which must
// not exist. A master may be using the catalog meanwhile: the copy is one
// read transaction (VACUUM INTO), which sees every commit before it and
// none after, and holds off no writer. The copy is checked, synced and
// then renamed to dst, so dst is either a whole backup or absent.
func Backup(ctx context.Context, path, dst string, now time.Time) (Snapshot, error) {
	if _, err := os.Stat(path); err != nil {
		return Snapshot{}, muster.Wrap(muster.EINVALID, err, "--from: no catalog at %s", path)
	}
	if _, err := os.Lstat(dst); err == nil {
		return Snapshot{}, muster.Errorf(muster.ECONFLICT, "--to: %s exists; a backup is never written over a file, so name a new one", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, fmt.Errorf("--to: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(dst)); err != nil || !fi.IsDir() {
		return Snapshot{}, muster.Errorf(muster.EINVALID, "--to: no directory %s to write the backup in", filepath.Dir(dst))
	}
	src, err := openFile(path, false)
	if err != nil {
		return Snapshot{}, err
	}
	defer src.Close()
	if _, err := schemaOf(ctx, src, path); err != nil {
		return Snapshot{}, err
	}
	tmp := dst + ".partial"
	os.Remove(tmp) // left by a backup that was killed
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	// Made empty and private first (VACUUM INTO writes into an empty
	// file): the copy holds what the catalog does, readable by its owner
	// alone from its first byte.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Snapshot{}, fmt.Errorf("--to: %w", err)
	}
	f.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return Snapshot{}, fmt.Errorf("back up %s: %w", path, err)
	}
	if err := stamp(ctx, tmp, now); err != nil {
		return Snapshot{}, err
	}
	snap, err := Inspect(ctx, tmp)
	if err != nil {
		return Snapshot{}, fmt.Errorf("the backup written to %s does not read back: %w", tmp, err)
	}
	if err := syncFile(tmp); err != nil {
		return Snapshot{}, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Snapshot{}, err
	}
	ok = true
	snap.Path = dst
	return snap, syncDir(filepath.Dir(dst))
}

// stamp records in the backup at path when it was taken.
func stamp(ctx context.Context, path string, now time.Time) error {
	db, err := openFile(path, true)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		backupTakenAt, now.UTC().Format(time.RFC3339))
	return errors.Join(err, db.Close())
}

// Inspect checks the catalog file at path (SQLite's quick_check, and that
// it is a muster catalog this muster can open) and counts what it holds.
func Inspect(ctx context.Context, path string) (Snapshot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Snapshot{}, err
	}
	db, err := openFile(path, false)
	if err != nil {
		return Snapshot{}, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&check); err != nil {
		return Snapshot{}, muster.Wrap(muster.EINVALID, err, "%s is not a SQLite database", path)
	}
	if check != "ok" {
		return Snapshot{}, muster.Errorf(muster.EINVALID, "%s is damaged: %s", path, check)
	}
	s := Snapshot{Path: path, Bytes: fi.Size()}
	if s.Schema, err = schemaOf(ctx, db, path); err != nil {
		return Snapshot{}, err
	}
	var taken sql.NullString
	err = db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM targets WHERE state <> 'defected'),
		(SELECT COUNT(*) FROM jobs),
		(SELECT COUNT(*) FROM runs),
		(SELECT value FROM meta WHERE key = ?)`, backupTakenAt).Scan(&s.Targets, &s.Jobs, &s.Runs, &taken)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read %s: %w", path, err)
	}
	if taken.Valid {
		s.TakenAt, _ = time.Parse(time.RFC3339, taken.String)
	}
	return s, nil
}

// Restore puts the backup at src in place of the catalog at path, with no
// master using it (it holds the catalog's lock throughout). What is put
// in place is what SQLite reads in src, with a write-ahead log beside it:
// src may be a catalog a restore replaced, kept with its log. The catalog it
// replaces, with its write-ahead log, is kept beside it, renamed with the
// time of the restore (and a number, if a restore in the same second took
// that name); the restored catalog gets a new epoch, so every
// target resyncs its jobs at its next poll instead of trusting a cursor
// the backup may be behind.
func Restore(ctx context.Context, src, path string, now time.Time) (restored Snapshot, replaced string, err error) {
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return Snapshot{}, "", muster.Errorf(muster.EINVALID, "--to: no directory %s to restore the catalog in", filepath.Dir(path))
	}
	lock, err := dirlock.AcquireFile(path+lockSuffix, "catalog "+path)
	if err != nil {
		return Snapshot{}, "", err
	}
	defer lock.Release()
	snap, err := Inspect(ctx, src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Snapshot{}, "", muster.Wrap(muster.EINVALID, err, "--from: no backup at %s", src)
		}
		return Snapshot{}, "", fmt.Errorf("--from: %w", err)
	}
	tmp := path + ".restoring"
	defer os.Remove(tmp)
	if err := copyCatalog(ctx, src, tmp); err != nil {
		return Snapshot{}, "", err
	}
	if err := newEpochIn(ctx, tmp); err != nil {
		return Snapshot{}, "", err
	}
	if err := syncFile(tmp); err != nil {
		return Snapshot{}, "", err
	}
	// The size restored, which src's file alone need not say.
	if fi, err := os.Stat(tmp); err == nil {
		snap.Bytes = fi.Size()
	}
	// The log and shared memory go with the file they belong to, and go
	// even without it (the file removed after a crash): a log left beside
	// the restored catalog would be replayed into it.
	suffixes := []string{"", "-wal", "-shm", "-journal"}
	present := false
	for _, suffix := range suffixes {
		if _, err := os.Lstat(path + suffix); err == nil {
			present = true
		}
	}
	if present {
		if replaced, err = unusedName(path+".replaced-"+now.UTC().Format("20060102T150405Z"), suffixes...); err != nil {
			return Snapshot{}, "", fmt.Errorf("keep the catalog being replaced: %w", err)
		}
		for _, suffix := range suffixes {
			if err := os.Rename(path+suffix, replaced+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Snapshot{}, "", fmt.Errorf("keep the catalog being replaced: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return Snapshot{}, "", err
	}
	snap.Path = path
	return snap, replaced, syncDir(filepath.Dir(path))
}

// unusedName returns base, or base with -2, -3… after it, the first for
// which no file named it with any of suffixes exists: a rename onto a file
// replaces it, and a catalog kept by an earlier restore in the same second
// (or a log beside it) must not be.
func unusedName(base string, suffixes ...string) (string, error) {
	for n := 1; ; n++ {
		name := base
		if n > 1 {
			name = fmt.Sprintf("%s-%d", base, n)
		}
		free := true
		for _, suffix := range suffixes {
			if _, err := os.Lstat(name + suffix); err == nil {
				free = false
				break
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
		if free {
			return name, nil
		}
	}
}

// newEpochIn gives the catalog file at path a new epoch.
func newEpochIn(ctx context.Context, path string) error {
	db, err := openFile(path, true)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `UPDATE meta SET value = lower(hex(randomblob(8))) WHERE key = 'epoch'`)
	return errors.Join(err, db.Close())
}

// openFile opens an existing catalog file on one connection, without the
// catalog's lock: for a read transaction beside a master, or for a file no
// master uses.
func openFile(path string, write bool) (*sql.DB, error) {
	q := url.Values{"mode": {"ro"}, "_pragma": {"busy_timeout(10000)"}}
	if write {
		q.Set("mode", "rw")
	}
	db, err := sql.Open("sqlite", sqlite.URI(path, q))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// schemaOf returns the last migration applied to the catalog in db,
// refusing a file that is not a catalog or is newer than this muster.
func schemaOf(ctx context.Context, db *sql.DB, path string) (int, error) {
	var version sql.NullInt64
	var epochs int
	err := db.QueryRowContext(ctx, `SELECT (SELECT MAX(version) FROM schema_migrations), (SELECT COUNT(*) FROM meta WHERE key = 'epoch')`).Scan(&version, &epochs)
	if err != nil || !version.Valid || epochs != 1 {
		return 0, muster.Errorf(muster.EINVALID, "%s is not a muster catalog", path)
	}
	if latest := LatestMigration(); int(version.Int64) > latest {
		return 0, muster.Errorf(muster.EUNSUPPORTED, "%s is a catalog of a newer muster (schema %d; this muster knows up to %d): use that muster's binary", path, version.Int64, latest)
	}
	return int(version.Int64), nil
}

// LatestMigration is the number of the last migration this muster has.
func LatestMigration() int { return migration.Latest(migrations, "migrations") }

// copyCatalog writes what the catalog file src holds to a new file dst,
// replacing any there, in one read transaction (VACUUM INTO): what SQLite
// reads in src, with the changes still in a write-ahead log beside it,
// which a copy of the file's bytes would leave out.
func copyCatalog(ctx context.Context, src, dst string) error {
	os.Remove(dst)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	db, err := openFile(src, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
