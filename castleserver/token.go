package castleserver

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request tokens. Castle's real tokens are opaque blobs minted by its
// client SDKs; this server's tokens carry what its rules need in plain
// sight:
//
//	cst1.<creation time, Unix milliseconds>.<device name, base64url without padding>
//
// Mint them with NewRequestToken. The device name identifies the browser
// or app the token stands for: tokens minted for the same device name give
// the same device fingerprint (DeviceFingerprint), which drives the
// new_device and multiple_accounts_per_device rules.

const tokenPrefix = "cst1"

// maxTokenSkew is how far in the future a token's creation time may lie
// by the server's clock: client clocks drift.
const maxTokenSkew = 30 * time.Second

// NewRequestToken mints a request token created at created for the device
// named device (any string; "" means unknown, and the server then derives
// the device from the request's User-Agent and IP).
func NewRequestToken(created time.Time, device string) string {
	return tokenPrefix + "." + strconv.FormatInt(created.UnixMilli(), 10) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(device))
}

// parseToken reads a token minted by NewRequestToken.
func parseToken(tok string) (created time.Time, device string, ok bool) {
	prefix, rest, ok1 := strings.Cut(tok, ".")
	ms, dev, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || prefix != tokenPrefix || strings.Contains(dev, ".") {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, "", false
	}
	d, err := base64.RawURLEncoding.DecodeString(dev)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.UnixMilli(n), string(d), true
}

// checkToken decides on a request token at now. The message never
// repeats the token.
func (s *Server) checkToken(tok string, now time.Time) (string, bool) {
	if tok == "" {
		return "The request token is empty", false
	}
	created, _, ok := parseToken(tok)
	if !ok {
		return "The request token is malformed", false
	}
	s.tmu.Lock()
	_, refused := s.refused[tok]
	s.tmu.Unlock()
	if refused {
		return "The request token was refused", false
	}
	switch age := now.Sub(created); {
	case age > s.cfg.TokenLifetime:
		return fmt.Sprintf("The request token has expired: created %s ago, tokens are valid for %s",
			age.Truncate(time.Millisecond), s.cfg.TokenLifetime), false
	case age < -maxTokenSkew:
		return fmt.Sprintf("The request token was created %s in the future", (-age).Truncate(time.Millisecond)), false
	}
	return "", true
}

// RefuseToken makes the server answer 422 invalid_request_token to every
// later request to /v1/risk or /v1/filter that carries tok, as Castle does
// for a token it cannot accept. /v1/log, where the token is optional, does
// not check tokens.
func (s *Server) RefuseToken(tok string) {
	s.tmu.Lock()
	s.refused[tok] = struct{}{}
	s.tmu.Unlock()
}

// DeviceFingerprint is the device fingerprint the server reports (in a
// verdict's device.fingerprint) for requests whose token was minted for
// device by NewRequestToken.
func DeviceFingerprint(device string) string {
	return fingerprint("device\x00" + device)
}

// uaFingerprint is the fingerprint of a request whose token names no
// device: its User-Agent and IP.
func uaFingerprint(userAgent, ip string) string {
	return fingerprint("ua-ip\x00" + userAgent + "\x00" + ip)
}

// fingerprint is 22 base64url characters, the length of Castle's
// fingerprints.
func fingerprint(s string) string {
	h := sha256.Sum256([]byte("castleserver fingerprint\x00" + s))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}
