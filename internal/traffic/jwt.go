package traffic

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtKind is what a message's Secure Mode userJwt is meant to be.
type jwtKind int

const (
	jwtAbsent      jwtKind = iota
	jwtValid               // HS256 under Secret, claims {id, email, iat, exp}
	jwtAlgNone             // alg "none", no signature
	jwtOtherSecret         // HS256 under another secret
	jwtExpired             // HS256 under Secret, exp 15 min to 48 h before Now
	jwtNotYetValid         // HS256 under Secret, nbf 1 h after Now
	jwtWrongAlg            // HS512 under Secret: only HS256 is accepted
	jwtTampered            // a valid token whose payload names another user
	numJWTKinds
)

func (k jwtKind) invalid() bool { return k > jwtValid }

var jwtKindNames = [numJWTKinds]string{"absent", "valid", "alg_none", "other_secret", "expired", "not_yet_valid", "wrong_alg", "tampered"}

func (k jwtKind) String() string { return jwtKindNames[k] }

// claims are the token claims for u, valid from 30 min before Now to 2 h
// after it.
func (g *Generator) claims(u *user) jwt.MapClaims {
	return jwt.MapClaims{
		"id":    u.id,
		"email": u.email,
		"iat":   g.cfg.Now.Add(-30 * time.Minute).Unix(),
		"exp":   g.cfg.Now.Add(2 * time.Hour).Unix(),
	}
}

// validToken returns u's Secure Mode token, the same on every message of u.
func (g *Generator) validToken(u *user) string {
	if u.token == "" {
		u.token = sign(jwt.SigningMethodHS256, g.claims(u), g.secret)
	}
	return u.token
}

// token returns a token of kind k for u ("" for jwtAbsent).
func (g *Generator) token(u *user, k jwtKind) string {
	switch k {
	case jwtAbsent:
		return ""
	case jwtValid:
		return g.validToken(u)
	}
	c := g.claims(u)
	switch k {
	case jwtAlgNone:
		return sign(jwt.SigningMethodNone, c, jwt.UnsafeAllowNoneSignatureType)
	case jwtOtherSecret:
		return sign(jwt.SigningMethodHS256, c, g.other)
	case jwtExpired:
		exp := g.cfg.Now.Add(-15*time.Minute - time.Duration(g.rng.Int64N(int64(48*time.Hour)))).Unix()
		c["exp"], c["iat"] = exp, exp-3600
		return sign(jwt.SigningMethodHS256, c, g.secret)
	case jwtNotYetValid:
		c["nbf"] = g.cfg.Now.Add(time.Hour).Unix()
		c["exp"] = g.cfg.Now.Add(3 * time.Hour).Unix()
		return sign(jwt.SigningMethodHS256, c, g.secret)
	case jwtWrongAlg:
		return sign(jwt.SigningMethodHS512, c, g.secret)
	case jwtTampered:
		// Keep header and signature of a valid token; swap the payload for
		// one naming another account.
		parts := strings.Split(g.validToken(u), ".")
		c["id"] = "usr_" + base62(g.rng, 14)
		payload, err := json.Marshal(c)
		if err != nil {
			panic(fmt.Sprintf("traffic: encoding claims: %v", err)) // unreachable: plain values
		}
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}
	panic(fmt.Sprintf("traffic: unknown token kind %d", k))
}

// sign signs claims; with the key types used here it cannot fail.
func sign(m jwt.SigningMethod, c jwt.MapClaims, key any) string {
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		panic(fmt.Sprintf("traffic: signing a %s token: %v", m.Alg(), err)) // unreachable
	}
	return s
}
