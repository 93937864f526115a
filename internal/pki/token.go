package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// tokenPrefix starts every enlistment token, so a token pasted in the wrong
// place is recognisable (and greppable in leaked logs).
const tokenPrefix = "mst1"

// EnlistToken is a parsed enlistment token: the CA fingerprint the target
// pins, and the secret the master keeps only a hash of.
type EnlistToken struct {
	CAFingerprint string
	Secret        string
}

// NewEnlistToken makes a token for the CA with the given fingerprint.
func NewEnlistToken(caFingerprint string) EnlistToken {
	return EnlistToken{CAFingerprint: caFingerprint, Secret: RandomSecret()}
}

// String renders the token as "mst1.<ca sha256>.<secret>".
func (t EnlistToken) String() string {
	return tokenPrefix + "." + t.CAFingerprint + "." + t.Secret
}

// ParseEnlistToken parses a token made by EnlistToken.String.
func ParseEnlistToken(s string) (EnlistToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return EnlistToken{}, errors.New("this is not an enlistment token: one looks like mst1.<64 hex digits>.<secret>; create one on the master with `muster token create --target NAME`")
	}
	if b, err := hex.DecodeString(parts[1]); err != nil || len(b) != sha256.Size {
		return EnlistToken{}, errors.New("the token's CA fingerprint is not 64 hex digits; was it cut short?")
	}
	if len(parts[2]) < 32 {
		return EnlistToken{}, errors.New("the token's secret is too short; was it cut short?")
	}
	return EnlistToken{CAFingerprint: strings.ToLower(parts[1]), Secret: parts[2]}, nil
}

// RandomSecret returns 32 random bytes, base64url-encoded.
func RandomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret returns the hex SHA-256 of a secret. Secrets here are 256 random
// bits, so a fast hash is enough: nothing can be guessed from it.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// PinnedTLSConfig verifies a master by the CA fingerprint in an enlistment
// token: the handshake must present a chain whose CA has that fingerprint and
// whose leaf that CA signed for serverName. It is used only to enlist; after
// that the target trusts the CA file it received.
func PinnedTLSConfig(caFingerprint, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below against the pinned CA, not the system roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				if subtle.ConstantTimeCompare([]byte(Fingerprint(c.Raw)), []byte(caFingerprint)) == 1 {
					ca = c
				}
			}
			if ca == nil || len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("the master did not present the CA whose fingerprint is in the token (%s…): wrong master, or a token from another master", caFingerprint[:12])
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			leaf := cs.PeerCertificates[0]
			_, err := leaf.Verify(x509.VerifyOptions{
				Roots:     roots,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("the master's certificate does not verify against the pinned CA: %w", err)
			}
			// The master is the token's, but reached at a name its
			// certificate was not issued for: a *x509.HostnameError,
			// which says so apart from a wrong master.
			return leaf.VerifyHostname(serverName)
		},
	}
}
