package muster

import "time"

// Enlistment token states, derived when a token is read. A token is used
// once a target enlisted with it, revoked once an admin revoked it before
// it was used, and expired from its expiry on if neither.
const (
	TokenActive  = "active"
	TokenUsed    = "used"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// EnlistToken is a single-use enlistment token as the master shows it:
// never its secret, which is shown once when the token is made, nor its
// hash. ID is the handle to revoke it by.
type EnlistToken struct {
	ID        int64      `json:"id"`
	Target    string     `json:"target"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by"`
}

// TokenState derives an enlistment token's state at now.
func TokenState(now, expiresAt time.Time, usedAt, revokedAt *time.Time) string {
	switch {
	case revokedAt != nil:
		return TokenRevoked
	case usedAt != nil:
		return TokenUsed
	case !now.Before(expiresAt):
		return TokenExpired
	}
	return TokenActive
}
