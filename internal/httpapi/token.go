package httpapi

import (
	"net/http"
	"strconv"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// tokenRoutes registers the listing and revocation of enlistment tokens
// (admin only); POST /api/v1/tokens, which makes them, is with the
// targets.
func (s *Server) tokenRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/v1/tokens", catalog.RoleAdmin, s.listTokens)
	s.handle(mux, "POST /api/v1/tokens/{id}/revoke", catalog.RoleAdmin, s.revokeToken)
	s.handle(mux, "POST /api/v1/tokens/revoke", catalog.RoleAdmin, s.revokeTargetTokens)
}

// listTokens answers GET /api/v1/tokens[?all=true]: the enlistment tokens
// that can still enlist a target, or, with all, every one the master
// keeps. Never a secret nor its hash.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ caller) error {
	all, err := boolParam(r.URL.Query().Get("all"), "all")
	if err != nil {
		return err
	}
	toks, err := s.DB.FindEnlistTokens(r.Context(), all)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, toks)
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := ParseTokenID(r.PathValue("id"))
	if err != nil {
		return err
	}
	tok, err := s.DB.RevokeEnlistToken(r.Context(), id, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, tok)
	return nil
}

// ParseTokenID reads an enlistment token's id, as `muster token list`
// shows it.
func ParseTokenID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, muster.Errorf(muster.EINVALID, "id: an enlistment token's id is a positive number, as `muster token list` shows it, not %q", s)
	}
	return id, nil
}

// TokenRevokeRequest revokes every enlistment token for a target name that
// could still enlist it.
type TokenRevokeRequest struct {
	Target string `json:"target"`
}

func (s *Server) revokeTargetTokens(w http.ResponseWriter, r *http.Request, c caller) error {
	var req TokenRevokeRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	toks, err := s.DB.RevokeTargetEnlistTokens(r.Context(), req.Target, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, toks)
	return nil
}
