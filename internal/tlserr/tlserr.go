// Package tlserr tells a failed TLS handshake from other connection
// errors, for the Castle client and the Kafka connections alike: both hold
// on it as a systemic fault rather than retry it as a passing one.
package tlserr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Is reports whether err is (or wraps) an error of the TLS handshake: an
// untrusted or mismatched certificate, a server that does not speak TLS,
// an alert.
func Is(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		header           tls.RecordHeaderError
		alert            tls.AlertError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert)
}
