package tlserr_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/castle-destination/castle-destination/internal/tlserr"
)

func TestIs(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{x509.UnknownAuthorityError{}, true},
		{fmt.Errorf("dial: %w", x509.HostnameError{Host: "castle.io"}), true},
		{x509.CertificateInvalidError{Reason: x509.Expired}, true},
		{&tls.CertificateVerificationError{Err: errors.New("bad")}, true},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true},
		{tls.AlertError(42), true},
		{io.EOF, false},
		{context.DeadlineExceeded, false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{nil, false},
	} {
		if got := tlserr.Is(c.err); got != c.want {
			t.Errorf("Is(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A real handshake with a server whose certificate the client does not
// trust fails in a way Is recognises.
func TestIsUntrustedServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, err := http.Get(srv.URL) // the default client does not trust httptest's certificate
	if err == nil || !tlserr.Is(err) {
		t.Fatalf("GET with an untrusted certificate: %v, want a TLS failure", err)
	}
}
