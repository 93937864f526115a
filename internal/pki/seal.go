package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// MinSecretLen is the shortest secret Seal accepts: a secret file holds at
// least this many bytes (e.g. `head -c 32 /dev/urandom | base64`).
const MinSecretLen = 32

// sealPrefix marks the format of a sealed value, so a later one can differ.
const sealPrefix = "aes256gcm:"

// ErrUnseal says a sealed value was not sealed with the secret given (or was
// altered).
var ErrUnseal = errors.New("pki: the value was sealed with another secret, or altered")

// sealKey derives the AES-256 key from a secret.
func sealKey(secret []byte) []byte {
	sum := sha256.Sum256(append([]byte("muster seal v1\x00"), secret...))
	return sum[:]
}

// Seal encrypts and authenticates plaintext with a key derived from secret
// (AES-256-GCM), for keeping a private key in a shared database.
func Seal(secret, plaintext []byte) (string, error) {
	if len(secret) < MinSecretLen {
		return "", errors.New("pki: the secret is shorter than 32 bytes")
	}
	block, err := aes.NewCipher(sealKey(secret))
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	return sealPrefix + base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, plaintext, nil)), nil
}

// Unseal reverses Seal.
func Unseal(secret []byte, sealed string) ([]byte, error) {
	b64, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, ErrUnseal
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, ErrUnseal
	}
	block, err := aes.NewCipher(sealKey(secret))
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(raw) < gcm.NonceSize() {
		return nil, ErrUnseal
	}
	out, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	if err != nil {
		return nil, ErrUnseal
	}
	return out, nil
}
