package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
)

// TokenPrefix starts every API token kplane mints, so a leaked token is
// recognisable by secret scanners and by people reading a config file.
const TokenPrefix = "kp_"

// secretBytes of randomness gives 256 bits: unguessable, and long enough
// that a fast unsalted hash (SHA-256) is safe to store.
const secretBytes = 32

func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func newToken() (string, error) {
	s, err := newSecret()
	if err != nil {
		return "", err
	}
	return TokenPrefix + s, nil
}

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// equalSecret compares two secrets (or their hashes) in constant time.
func equalSecret(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}

// validToken checks a caller-chosen token (EnsureAdmin): printable ASCII
// without spaces, because it travels in an Authorization header.
func validToken(tok string) error {
	if len(tok) == 0 || len(tok) > 512 {
		return fmt.Errorf("token must be 1 to 512 characters: %w", ErrInvalid)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("token must be printable ASCII without spaces: %w", ErrInvalid)
		}
	}
	return nil
}
