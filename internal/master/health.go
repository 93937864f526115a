package master

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// readyTimeout bounds how long GET /readyz waits for the catalog: a check
// that hangs would hold the load balancer's connection and tell it nothing.
const readyTimeout = 2 * time.Second

// ready answers GET /readyz: 200 while the catalog answers and takes
// changes (with, on a shared catalog, whether this master runs the
// singleton duties), 503 saying why when it does not. The cause in detail
// goes to the log, not to the anonymous caller, as it may name the
// database's host.
func (m *Main) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := m.Catalog.Ready(ctx); err != nil {
		why := muster.ErrorMessage(err)
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			why = "the catalog did not answer within " + readyTimeout.String()
		case muster.ErrorCode(err) != muster.EUNAVAILABLE:
			why = "the catalog does not answer"
		}
		m.log.Warn("not ready: "+why, muster.LogErr, err)
		jsonhttp.WriteError(w, r, m.log, muster.Wrap(muster.EUNAVAILABLE, err, "not ready: %s; the master's log says more", why))
		return
	}
	if !m.Catalog.Store().Shared() {
		w.Write([]byte("ok\n"))
		return
	}
	role := "standby"
	if m.leader.Load() {
		role = "leader"
	}
	fmt.Fprintf(w, "ok (%s)\n", role)
}
