package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// Secret holds a credential. It prints as "[redacted]" through every
// formatting path (fmt verbs, %#v, JSON, slog, zap's Stringer encoding) so
// that a config dump, an error or a log line can never leak it. Use Reveal
// where the value is really needed (an HTTP Basic auth header, a SASL
// handshake, an HMAC key).
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format implements fmt.Formatter so that no verb (%s, %v, %q, %x, ...)
// reaches the underlying string.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, s.GoString())
			return
		}
		fmt.Fprint(f, s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// trimmedSecret is a Secret setting that drops white space around the
// value, and one pair of quote marks around it (docker run --env-file
// keeps the quotes of KEY="value"), and records that it did
// (Castle.SecretTrimmed).
type trimmedSecret struct {
	s       *Secret
	trimmed *bool
}

func (t *trimmedSecret) Set(v string) error {
	trimmed := strings.TrimSpace(v)
	if n := len(trimmed); n >= 2 && (trimmed[0] == '"' || trimmed[0] == '\'') && trimmed[n-1] == trimmed[0] {
		trimmed = strings.TrimSpace(trimmed[1 : n-1])
	}
	*t.trimmed = trimmed != v
	*t.s = Secret(trimmed)
	return nil
}

func (t *trimmedSecret) String() string {
	if t == nil || t.s == nil {
		return ""
	}
	return t.s.String()
}

func (*trimmedSecret) redacts() {}
