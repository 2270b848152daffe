package mapping

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/internal/jsonw"
)

// MaxTokenBytes bounds a userJwt; a longer one is invalid.
const MaxTokenBytes = 8 << 10

// jwtLeeway tolerates clock skew on exp and nbf.
const jwtLeeway = 30 * time.Second

var (
	errNoSecret = errors.New("no API secret to verify it with")
	// errCrit: the token names header extensions it must be understood
	// with (RFC 7515 §4.1.11); this verifier understands none.
	errCrit = errors.New(`token has a "crit" header this verifier does not understand`)
	// errPayload: the claims are not a JSON object (null, an array).
	errPayload = errors.New("token payload is not a JSON object")
	// errSignature: an HS256 token whose signature does not verify under
	// the API secret: a forged token, or the wrong secret (Result.BadSignature).
	errSignature = errors.New("signature is invalid or the algorithm is not HS256")
)

// verify checks an HS256 token under the API secret at time at and returns
// its claims. Errors never contain the token or the secret.
func (m *Mapper) verify(token string, at time.Time) (jwt.MapClaims, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("token longer than %d bytes", MaxTokenBytes)
	}
	if len(m.cfg.Secret) == 0 {
		return nil, errNoSecret
	}
	if v, ok := m.tokens.get(token); ok {
		if err := v.validAt(at); err != nil {
			return nil, err
		}
		return v.claims, nil
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errCrit
		}
		if !payloadIsObject(t.Raw) {
			return nil, errPayload
		}
		return m.cfg.Secret, nil
	},
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithTimeFunc(func() time.Time { return at }),
		jwt.WithLeeway(jwtLeeway),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) && tok != nil && tok.Header["alg"] == "HS256" {
			return nil, errSignature
		}
		return nil, jwtError(err)
	}
	v := &verified{claims: claims}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		v.exp = exp.Time
	}
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil {
		v.nbf = nbf.Time
	}
	m.tokens.put(strings.Clone(token), v)
	return claims, nil
}

// verified is a token whose signature checked out, with its time bounds.
type verified struct {
	claims   jwt.MapClaims
	exp, nbf time.Time
}

func (v *verified) validAt(at time.Time) error {
	if !v.exp.IsZero() && at.After(v.exp.Add(jwtLeeway)) {
		return errors.New("token is expired")
	}
	if !v.nbf.IsZero() && at.Before(v.nbf.Add(-jwtLeeway)) {
		return errors.New("token is not valid yet")
	}
	return nil
}

// tokenCache remembers tokens that verified, so that a user's token is
// checked with HMAC once rather than on every event. Only valid signatures
// enter it, so bad tokens cannot fill it. Bounded by two generations: when
// the current one is full it becomes the previous one and the one before
// is dropped, and a token found in the previous generation moves back to
// the current one. So the tokens in use survive a rollover, and at most
// 2×tokenGeneration are kept.
type tokenCache struct {
	mu        sync.Mutex
	cur, prev map[string]*verified
}

const tokenGeneration = 5_000

func (c *tokenCache) get(tok string) (*verified, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[tok]; ok {
		return v, true
	}
	v, ok := c.prev[tok]
	if ok {
		delete(c.prev, tok)
		c.addLocked(tok, v)
	}
	return v, ok
}

func (c *tokenCache) put(tok string, v *verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(tok, v)
}

func (c *tokenCache) addLocked(tok string, v *verified) {
	if c.cur == nil || len(c.cur) >= tokenGeneration {
		c.prev, c.cur = c.cur, make(map[string]*verified)
	}
	c.cur[tok] = v
}

// payloadIsObject reports whether the token's payload segment decodes to
// a JSON object. (jwt decodes the payload into a map, and JSON null leaves
// a map empty without an error.)
func payloadIsObject(token string) bool {
	parts := strings.SplitN(token, ".", 3)
	if len(parts) != 3 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	return err == nil && kind(b) == '{'
}

// jwtError is a short, bounded description of why a token failed.
func jwtError(err error) error {
	switch {
	case errors.Is(err, errCrit):
		return errCrit
	case errors.Is(err, errPayload):
		return errPayload

	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("signature is invalid or the algorithm is not HS256")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("token is unverifiable (algorithm not HS256)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return errors.New("token is expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errors.New("token is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return errors.New("token claims are invalid")
	default:
		return errors.New("token is invalid")
	}
}

func claimID(c jwt.MapClaims) string {
	if id := claimString(c["id"]); id != "" {
		return id
	}
	return claimString(c["sub"])
}

func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return truncate(x, MaxStringLength)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// usedClaims are the claims claimsInto took as user fields, with the
// registered ones (id, sub, exp, nbf, iat, iss, aud, jti), which never go
// to the traits.
type usedClaims struct {
	keys [5]string
	n    int
}

func (u *usedClaims) add(k string) { u.keys[u.n] = k; u.n++ }

func (u *usedClaims) has(k string) bool {
	switch k {
	case "id", "sub", "exp", "nbf", "iat", "iss", "aud", "jti":
		return true
	}
	for _, x := range u.keys[:u.n] {
		if x == k {
			return true
		}
	}
	return false
}

// claimsInto overrides the user with verified claims: id (else sub),
// email, phone, name, registered_at and address set the user's fields when
// they hold a usable value; every other claim, and a known one whose value
// is not usable (a registered_at that is no time), goes to user.traits by
// the flattening rule. The registered JWT claims (exp, nbf, iat, iss, aud,
// jti) are left out.
func claimsInto(u *User, c jwt.MapClaims, adj *Adjustment) {
	if id := claimID(c); id != "" {
		u.ID = id
	}
	// The claims used as fields, beside the registered ones: a set of at
	// most five, not a map, as this runs for every event of a user in
	// Secure Mode. No table of pointers into u either: escape analysis
	// would then move every mapped event's User to the heap, JWT or not.
	var used usedClaims
	for _, k := range [...]string{"email", "phone", "name"} {
		s := claimString(c[k])
		if s == "" {
			continue
		}
		switch k {
		case "email":
			u.Email = s
		case "phone":
			u.Phone = s
		default:
			u.Name = s
		}
		used.add(k)
	}
	switch v := c["registered_at"].(type) {
	case string, float64:
		s, number := claimString(v), false
		t, ok := time.Time{}, false
		if _, number = v.(float64); number || numeric(s) {
			t, ok = epoch(s)
		} else {
			t, ok = parseTime(s)
		}
		if ok {
			u.RegisteredAt = t.Format(jsonw.StampLayout)
			used.add("registered_at")
		} else {
			*adj |= AdjustRegisteredAtInvalid
		}
	}
	if a, ok := c["address"].(map[string]any); ok {
		get := func(k string) string { return claimString(a[k]) }
		addr := Address{Line1: get("line1"), Line2: get("line2"), City: get("city"),
			CountryCode: upperASCII(get("country_code")), RegionCode: get("region_code"), PostalCode: get("postal_code")}
		if addr.valid() {
			u.Address = addr
			used.add("address")
		} else {
			*adj |= AdjustAddressNoCountry // left in traits, with the other claims
		}
	}
	var room [8]string // most tokens carry a few claims beyond the fields
	extra := room[:0]
	for k, v := range c {
		if !used.has(k) && v != nil {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return
	}
	sort.Strings(extra)
	f := flattener{dst: append([]byte(nil), u.traits...), n: u.ntraits}
	for _, k := range extra {
		switch v := c[k].(type) {
		case string:
			f.add(k, v)
		case float64, bool:
			if f.room() {
				f.member(k)
				f.dst = append(f.dst, claimString(v)...)
			}
		default: // an object flattens to dotted keys, an array to a JSON string
			b, err := json.Marshal(v)
			if err != nil {
				continue // not reachable: the claims were decoded from JSON
			}
			if obj, ok := v.(map[string]any); ok && len(obj) > 0 {
				if k == "traits" {
					// The token's user object's own traits (Castle.js's
					// UserParams.traits) are the user's traits.
					f.object("", b, 1)
				} else {
					f.object(k, b, 2)
				}
			} else if !ok {
				f.add(k, string(b))
			}
		}
	}
	u.traits, u.ntraits = f.dst, f.n
	*adj |= f.adj
}
