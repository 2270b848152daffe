package harness

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
)

// With TLS the Castle API answers over HTTPS with a certificate that a
// client trusting CAFile (as a worker given Vars does, through
// SSL_CERT_FILE) verifies, and no other client does.
func TestCastleAPIOverTLS(t *testing.T) {
	env, err := Start(Options{Partitions: 1, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			env.Close()
		}
	}()
	if !strings.HasPrefix(env.CastleURL, "https://") {
		t.Fatalf("Castle API at %s, want https", env.CastleURL)
	}
	if got := env.Vars(nil)["SSL_CERT_FILE"]; got != env.CAFile || got == "" {
		t.Fatalf("Vars SSL_CERT_FILE = %q, want the CA file %q", got, env.CAFile)
	}
	pemBytes, err := os.ReadFile(env.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("the CA file holds no certificate")
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := trusting.Post(env.CastleURL+"/v1/log", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("a client trusting the CA file: %v", err)
	}
	resp.Body.Close()
	if resp.TLS == nil {
		t.Fatal("answer not over TLS")
	}
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	_, err = other.Get(env.CastleURL + "/v1/log")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("a client not trusting the CA file: %v, want an unknown authority", err)
	}
	env.Close()
	closed = true
	if _, err := os.Stat(env.CAFile); !os.IsNotExist(err) {
		t.Fatalf("CA file after Close: %v, want it removed", err)
	}
}
