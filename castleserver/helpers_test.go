package castleserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
)

const secret = "sk_test_castleserver_9Yh2"

// t0 is the tests' clock start.
var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// clock is a manual clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newServer(t testing.TB, cfg castleserver.Config) *castleserver.Server {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = secret
	}
	s, err := castleserver.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// answer is one response.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

// errType is the "type" of a Castle error body, or "".
func (a answer) errType() string {
	var e struct{ Type string }
	_ = json.Unmarshal(a.body, &e)
	return e.Type
}

func (a answer) errMessage() string {
	var e struct{ Message string }
	_ = json.Unmarshal(a.body, &e)
	return e.Message
}

// post sends body to path with the test secret, straight to the handler.
func post(t testing.TB, h http.Handler, path, body string) answer {
	t.Helper()
	return postAs(t, h, path, body, secret)
}

func postAs(t testing.TB, h http.Handler, path, body, pass string) answer {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.SetBasicAuth("", pass)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return answer{code: res.StatusCode, header: res.Header, body: b}
}

// verdict is the part of a 201 body the tests read.
type verdict struct {
	ID     string  `json:"id"`
	Type   string  `json:"type"`
	Status string  `json:"status"`
	Risk   float64 `json:"risk"`
	Scores map[string]struct {
		Score float64 `json:"score"`
	} `json:"scores"`
	Policy struct {
		Action, Name, ID string
		RevisionID       string `json:"revision_id"`
	} `json:"policy"`
	Signals map[string]struct{} `json:"signals"`
	Device  struct {
		Token, Fingerprint string
	} `json:"device"`
	Endpoint string `json:"endpoint"`
}

func parseVerdict(t testing.TB, a answer) verdict {
	t.Helper()
	if a.code != http.StatusCreated {
		t.Fatalf("status %d (%s), want 201", a.code, a.body)
	}
	var v verdict
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("verdict %s: %v", a.body, err)
	}
	return v
}

func (v verdict) signalNames() []string {
	var out []string
	for k := range v.Signals {
		out = append(out, k)
	}
	return out
}

// ev builds a request body from a template object, with fields set or,
// for a nil value, removed.
func ev(base map[string]any, set map[string]any) string {
	m := clone(base)
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

var headers = map[string]any{"User-Agent": "Mozilla/5.0 (test)", "Accept-Language": "en", "Cookie": true}

// riskBody is a valid /v1/risk body.
func riskBody(token string) map[string]any {
	return map[string]any{
		"type": "$login", "status": "$succeeded", "request_token": token,
		"user":    map[string]any{"id": "u1", "email": "u1@example.com"},
		"context": map[string]any{"ip": "81.2.69.142", "headers": headers},
	}
}

// filterBody is a valid /v1/filter body.
func filterBody(token string) map[string]any {
	return map[string]any{
		"type": "$login", "status": "$failed", "request_token": token,
		"params":  map[string]any{"email": "who@example.com"},
		"context": map[string]any{"ip": "81.2.69.142", "headers": headers},
	}
}
