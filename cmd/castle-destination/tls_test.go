package main

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/selfcert"
)

// TestReplayOverTLS runs the real replay command as a child process against
// the Castle-compatible server over HTTPS, as Castle is served: the child
// trusts the server's authority only through SSL_CERT_FILE (the system's
// roots, as in a container), reaches it on its own HTTP/1.1 connections
// although the server offers HTTP/2 too, and delivers every event once.
func TestReplayOverTLS(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a child process")
	}
	srv, err := castleserver.New(castleserver.Config{Secret: harness.Secret, MaxRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := selfcert.NewCA("replay over TLS")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Server("castle.test")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		protos = map[string]int{}
	)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos[r.Proto]++
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	hs.EnableHTTP2 = true
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	hs.StartTLS()
	t.Cleanup(func() { srv.Close(); hs.Close() })

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 200
	input := filepath.Join(dir, "in", "events.ndjson")
	if err := os.MkdirAll(filepath.Dir(input), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTracks(t, input, "t-", n)
	c, stdout := startReplayChild(t, map[string]string{
		"CASTLE_API_URL": hs.URL, "CASTLE_API_SECRET": harness.Secret, "SSL_CERT_FILE": caFile,
		"REPLAY_CHECKPOINT": filepath.Join(dir, "cp.json"), "REPLAY_PROGRESS": "off",
	}, "replay", input)
	if err := c.wait(t, 60*time.Second); err != nil {
		t.Fatalf("replay over TLS: %v\n%s", err, tail(c.stderr.String(), 20))
	}
	if got := srv.Stats().Accepted; got != n {
		t.Fatalf("Castle accepted %d events, want %d\n%s", got, n, stdout.String())
	}
	mu.Lock()
	defer mu.Unlock()
	// n events, and the start-up check that records nothing.
	if protos["HTTP/1.1"] != n+1 || len(protos) != 1 {
		t.Errorf("requests by protocol %v, want all %d over HTTP/1.1", protos, n+1)
	}
}
