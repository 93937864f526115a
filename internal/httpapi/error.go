package httpapi

import (
	"net/http"

	"github.com/musterhq/muster/internal/jsonhttp"
)

// writeError answers with err, logging internal errors to the server's
// logger.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	jsonhttp.WriteError(w, r, s.Log, err)
}
