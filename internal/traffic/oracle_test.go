package traffic_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/internal/traffic"
)

// oracle reads records the way the worker's filtering and mapping rules
// (docs/mapping.md) describe, from the bytes alone, knowing nothing of the
// generator's intent. The tests compare its
// verdicts with the generator's Expects: a generator whose bytes drift from
// its intent fails them.
type oracle struct {
	secret    []byte
	now       time.Time
	leeway    time.Duration
	forwarded map[string]bool // messageIds forwarded so far
	// jwtFailures counts invalid tokens by why they failed.
	jwtFailures map[string]int
	// notes counts cases worth knowing the stream covers.
	notes map[string]int
}

func newOracle(secret string, now time.Time) *oracle {
	return &oracle{secret: []byte(secret), now: now, forwarded: map[string]bool{},
		jwtFailures: map[string]int{}, notes: map[string]int{}}
}

var serverLibs = map[string]bool{
	"analytics-node": true, "analytics-go": true, "analytics-python": true, "analytics-ruby": true,
	"analytics-java": true, "analytics-php": true, "analytics-dotnet": true,
}

// record returns the oracle's Expects for one record's value, or an error
// when the bytes are ambiguous under those rules (a generator bug).
func (o *oracle) record(value []byte) ([]traffic.Expect, error) {
	var v any
	if err := json.Unmarshal(value, &v); err != nil {
		return []traffic.Expect{bad("")}, nil
	}
	return o.decoded(v)
}

// decoded is record for a value already decoded by json.Unmarshal into an
// any, for a test that reads the same records many times. It does not
// modify v.
func (o *oracle) decoded(v any) ([]traffic.Expect, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return []traffic.Expect{bad("")}, nil
	}
	if batch, ok := obj["batch"].([]any); ok && obj["type"] == nil {
		o.notes["envelope"]++
		bctx, _ := obj["context"].(map[string]any)
		binteg, _ := obj["integrations"].(map[string]any)
		var out []traffic.Expect
		for _, it := range batch {
			item, ok := it.(map[string]any)
			if !ok {
				out = append(out, bad(""))
				continue
			}
			e, err := o.message(mergeItem(item, bctx, binteg), item)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	e, err := o.message(obj, obj)
	return []traffic.Expect{e}, err
}

func bad(id string) traffic.Expect {
	return traffic.Expect{MessageID: id, Outcome: traffic.DeadLetter, Reason: traffic.ReasonMalformed}
}

// mergeItem merges the batch-level context and integrations into an item,
// per key, the item winning.
func mergeItem(item, bctx, binteg map[string]any) map[string]any {
	out := make(map[string]any, len(item)+2)
	for k, v := range item {
		out[k] = v
	}
	for name, batch := range map[string]map[string]any{"context": bctx, "integrations": binteg} {
		if batch == nil {
			continue
		}
		own, _ := item[name].(map[string]any)
		m := make(map[string]any, len(own)+len(batch))
		for k, v := range batch {
			m[k] = v
		}
		for k, v := range own {
			m[k] = v
		}
		out[name] = m
	}
	return out
}

// message applies the filters in their order (unsupported type, server-side
// or mobile, integration disabled, userJwt, duplicate), then the mapping, to
// one (merged) message. raw is the item before the merge, for notes.
func (o *oracle) message(m, raw map[string]any) (traffic.Expect, error) {
	id, _ := m["messageId"].(string)
	typ, ok := m["type"].(string)
	if !ok {
		return bad(id), nil
	}
	e := traffic.Expect{MessageID: id, Type: typ}
	drop := func(out traffic.Outcome, reason string) (traffic.Expect, error) {
		e.Outcome, e.Reason = out, reason
		return e, nil
	}
	if typ != "page" && typ != "track" && typ != "identify" {
		return drop(traffic.Drop, traffic.ReasonUnsupportedType)
	}
	ctx, _ := m["context"].(map[string]any)
	lib, _ := ctx["library"].(map[string]any)
	libName, _ := lib["name"].(string)
	channel, _ := m["channel"].(string)
	switch {
	case channel == "server" || channel == "" && serverLibs[libName]:
		if channel == "" {
			if rawCtx, _ := raw["context"].(map[string]any); rawCtx["library"] == nil {
				o.notes["server_side_by_batch_library"]++
			}
		}
		return drop(traffic.Drop, traffic.ReasonServerSide)
	case channel == "mobile":
		return drop(traffic.Drop, traffic.ReasonMobile)
	case channel != "" && channel != "client" && channel != "browser":
		return e, fmt.Errorf("message %s: channel %q is not one the rules decide", id, channel)
	}
	integ, _ := m["integrations"].(map[string]any)
	castle, all, err := integrationKeys(integ)
	if err != nil {
		return e, fmt.Errorf("message %s: %w", id, err)
	}
	castleFalse := castle == false
	castleTruthy := castle != nil && castle != false
	if castleFalse || (all == false && !castleTruthy) {
		if rawInteg, _ := raw["integrations"].(map[string]any); castleFalse && rawInteg["Castle"] == nil && rawInteg["castle"] == nil {
			o.notes["disabled_by_batch"]++
		}
		return drop(traffic.Drop, traffic.ReasonIntegrationDisabled)
	}
	tok, err := userJWT(castle, ctx)
	if err != nil {
		return e, fmt.Errorf("message %s: %w", id, err)
	}
	var claims jwt.MapClaims
	if tok != "" {
		claims, err = o.verify(tok)
		if err != nil {
			return drop(traffic.DeadLetter, traffic.ReasonUserJWTInvalid)
		}
	}
	if typ == "identify" {
		e.Outcome = traffic.Identified
		return e, nil
	}
	if o.forwarded[id] {
		return drop(traffic.Drop, traffic.ReasonDuplicate)
	}
	o.forwarded[id] = true
	e.Outcome = traffic.Forward
	e.UserID, _ = m["userId"].(string)
	if claims != nil {
		cid, _ := claims["id"].(string)
		if cid != e.UserID {
			o.notes["claim_id_differs_from_userId"]++
		}
		e.UserID = cid
	}
	props, _ := m["properties"].(map[string]any)
	e.TraceID, _ = props["trace_id"].(string)
	if typ == "page" {
		e.CastleType = "$page"
	} else {
		e.CastleType = "$custom"
		e.CastleName, _ = m["event"].(string)
	}
	return e, nil
}

// integrationKeys finds Castle and All case-insensitively. Two spellings of
// one key with different values would leave the outcome to the
// implementation: the generator must never write them.
func integrationKeys(integ map[string]any) (castle, all any, err error) {
	var castles, alls []any
	for k, v := range integ {
		switch {
		case strings.EqualFold(k, "castle"):
			castles = append(castles, v)
		case strings.EqualFold(k, "all"):
			alls = append(alls, v)
		}
	}
	for _, vs := range [][]any{castles, alls} {
		for _, v := range vs[min(1, len(vs)):] {
			if !reflect.DeepEqual(v, vs[0]) {
				return nil, nil, fmt.Errorf("ambiguous integrations %v", integ)
			}
		}
	}
	if len(castles) > 0 {
		castle = castles[0]
	}
	if len(alls) > 0 {
		all = alls[0]
	}
	return castle, all, nil
}

// userJWT finds integrations.Castle.userJwt, then context.Castle.userJwt.
func userJWT(castle any, ctx map[string]any) (string, error) {
	var found []string
	if c, ok := castle.(map[string]any); ok {
		if t, ok := c["userJwt"].(string); ok {
			found = append(found, t)
		}
	}
	if c, ok := ctx["Castle"].(map[string]any); ok {
		if t, ok := c["userJwt"].(string); ok {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", errors.New("a token in both integrations.Castle and context.Castle")
}

// verify checks a Secure Mode token: HS256 only, under the secret, exp
// required and in the future, nbf (if any) in the past.
func (o *oracle) verify(tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return o.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(o.leeway),
		jwt.WithTimeFunc(func() time.Time { return o.now }))
	if err != nil {
		o.jwtFailures[jwtFailure(err)]++
		return nil, err
	}
	return claims, nil
}

func jwtFailure(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not_yet_valid"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method none"):
		return "alg_none"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return "wrong_alg"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad_signature"
	}
	return "other: " + err.Error()
}
