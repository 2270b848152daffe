package castleserver_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/castleserver"
)

// BenchmarkServeLog measures the server's own cost for one typical
// /v1/log request (no network, no rate limit), the path every load test
// goes through.
func BenchmarkServeLog(b *testing.B) {
	s, err := castleserver.New(castleserver.Config{Secret: secret, MaxRecords: 1, RateLimitOff: true})
	if err != nil {
		b.Fatal(err)
	}
	const body = `{"type":"$page","created_at":"2026-11-30T05:22:31.849Z","user":{"id":"usr_pH1cPnG6MG0ojy","email":"aiko.dubois53@web.de"},` +
		`"context":{"ip":"86.146.45.223","headers":{"User-Agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15","Accept-Language":"ja-JP"},` +
		`"library":{"name":"castle-destination","version":"dev"}},"properties":{"category":"Account","name":"Orders","path":"/account/orders",` +
		`"title":"Your orders","url":"https://www.acme-outfitters.com/account/orders"}}`
	r := httptest.NewRequest(http.MethodPost, castleserver.LogPath, nil)
	r.Header.Set("Content-Type", "application/json")
	r.SetBasicAuth("", secret)
	b.ReportAllocs()
	for b.Loop() {
		req := r.Clone(r.Context())
		req.Body = nopCloser{strings.NewReader(body)}
		req.ContentLength = int64(len(body))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
