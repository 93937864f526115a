package catalog_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// slowCerts holds its first certificate lookup until released, and keeps
// the serials of each read of several.
type slowCerts struct {
	catalog.Store
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	single           int
	several          [][]string
}

func (s *slowCerts) FindCert(ctx context.Context, serial string) (catalog.CertRow, error) {
	s.mu.Lock()
	s.single++
	s.mu.Unlock()
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.Store.FindCert(ctx, serial)
}

func (s *slowCerts) FindCerts(ctx context.Context, serials []string) ([]catalog.CertRow, error) {
	s.mu.Lock()
	s.several = append(s.several, slices.Sorted(slices.Values(serials)))
	s.mu.Unlock()
	return s.Store.FindCerts(ctx, serials)
}

// openSlowCerts opens a catalog on e whose certificate reads wait for
// the test to let them go.
func openSlowCerts(t *testing.T, e catalogtest.Engine) (*slowCerts, *catalog.Catalog) {
	t.Helper()
	store := &slowCerts{Store: e.Open(t), entered: make(chan struct{}), release: make(chan struct{})}
	db, err := catalog.Open(context.Background(), store, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store, db
}

func awaitWaitingCertReads(t *testing.T, db *catalog.Catalog, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.WaitingCertReads() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d certificate lookups wait, want %d", db.WaitingCertReads(), n)
		}
		runtime.Gosched()
	}
}

// A certificate lookup that finds none running reads alone; those that
// come while it runs are read together once it ends, each answered as it
// would have been alone (a serial of no certificate is refused), and the
// rows read are remembered.
func TestCertLookupsReadTogether(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store, db := openSlowCerts(t, e)
		for _, name := range []string{"web-1", "web-2", "web-3"} {
			enlist(t, db, name)
		}
		type answer struct {
			id  catalog.TargetIdentity
			err error
		}
		answers := map[string]chan answer{}
		lookup := func(serial string) {
			ch := make(chan answer, 1)
			answers[serial] = ch
			go func() {
				id, err := db.AuthenticateTarget(ctx, serial)
				ch <- answer{id, err}
			}()
		}
		lookup("serial-web-1")
		<-store.entered
		lookup("serial-web-2")
		awaitWaitingCertReads(t, db, 1)
		lookup("serial-web-3")
		awaitWaitingCertReads(t, db, 2)
		lookup("serial-nobody")
		awaitWaitingCertReads(t, db, 3)
		close(store.release)

		for _, name := range []string{"web-1", "web-2", "web-3"} {
			if a := <-answers["serial-"+name]; a.err != nil || a.id.Name != name {
				t.Errorf("serial-%s: %+v, %v; want %s", name, a.id, a.err, name)
			}
		}
		if a := <-answers["serial-nobody"]; muster.ErrorCode(a.err) != muster.EUNAUTHORIZED {
			t.Errorf("serial-nobody: %+v, %v; want EUNAUTHORIZED", a.id, a.err)
		}
		want := [][]string{{"serial-nobody", "serial-web-2", "serial-web-3"}}
		if store.single != 1 || !slices.EqualFunc(store.several, want, slices.Equal) {
			t.Errorf("%d single reads and %v, want 1 and %v", store.single, store.several, want)
		}
		for _, name := range []string{"web-1", "web-2", "web-3"} {
			if _, err := db.AuthenticateTarget(ctx, "serial-"+name); err != nil {
				t.Fatal(err)
			}
		}
		if store.single != 1 || len(store.several) != 1 {
			t.Errorf("remembered rows read again: %d single reads, %d of several", store.single, len(store.several))
		}
	})
}

// A lookup that comes while its serial is being read waits for that read
// only if nothing was forgotten since it began: after a forget (a
// certificate revoked, say) it reads the row again.
func TestCertLookupAfterForgetReadsAgain(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		store, db := openSlowCerts(t, e)
		enlist(t, db, "web-1")
		errs := make(chan error, 2)
		authenticate := func() {
			_, err := db.AuthenticateTarget(ctx, "serial-web-1")
			errs <- err
		}
		go authenticate()
		<-store.entered
		db.ForgetCredentials()
		go authenticate()
		awaitWaitingCertReads(t, db, 1)
		close(store.release)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if store.single != 2 {
			t.Errorf("the certificate was read %d times, want 2", store.single)
		}
	})
}

// brokenCerts panics in its first certificate lookup.
type brokenCerts struct {
	catalog.Store
	once sync.Once
}

func (s *brokenCerts) FindCert(ctx context.Context, serial string) (catalog.CertRow, error) {
	s.once.Do(func() { panic("the store broke") })
	return s.Store.FindCert(ctx, serial)
}

// A read whose store panics lets the next one go: the lookup after it
// reads and authenticates, instead of waiting for ever behind it.
func TestCertReadThatPanicsLetsTheNextGo(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		ctx := context.Background()
		db, err := catalog.Open(ctx, &brokenCerts{Store: e.Open(t)}, catalog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		enlist(t, db, "web-1")
		func() {
			defer func() {
				if p := recover(); p != "the store broke" {
					t.Fatalf("the first lookup: recovered %v, want the store's panic", p)
				}
			}()
			db.AuthenticateTarget(ctx, "serial-web-1")
		}()
		done := make(chan error, 1)
		go func() {
			_, err := db.AuthenticateTarget(ctx, "serial-web-1")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the lookup after the broken read: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the lookup after the broken read is still waiting for it")
		}
	})
}
