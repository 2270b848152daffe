package config

import (
	"errors"
	"fmt"
	"strings"
)

// SettingError is a bad or missing setting, named by its environment
// variable and its flag. The command prints it as one line and exits 2.
// Validate methods return it, and so do the start-up checks that find a
// setting unusable (a topic that does not exist, credentials the brokers
// refuse).
type SettingError struct {
	Env  string // e.g. "KAFKA_TOPIC"
	Flag string // without dashes, e.g. "kafka-topic"
	Err  error
}

// errRequired marks a missing required setting.
var errRequired = errors.New("is required")

func (e *SettingError) Error() string {
	if errors.Is(e.Err, errRequired) {
		return fmt.Sprintf("%s (--%s) is required", e.Env, e.Flag)
	}
	return fmt.Sprintf("%s (--%s): %v", e.Env, e.Flag, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// Name is how messages name the setting: "KAFKA_TOPIC (--kafka-topic)".
func (e *SettingError) Name() string { return fmt.Sprintf("%s (--%s)", e.Env, e.Flag) }

// settingErr returns a SettingError with a formatted cause.
func settingErr(env, flag, format string, args ...any) *SettingError {
	return &SettingError{Env: env, Flag: flag, Err: fmt.Errorf(format, args...)}
}

func required(env, flag string) error {
	return &SettingError{Env: env, Flag: flag, Err: errRequired}
}

func positive(env, flag string, v int) error {
	if v <= 0 {
		return settingErr(env, flag, "must be positive")
	}
	return nil
}

// ParseError is a command line or environment that does not parse: an
// unknown flag, a flag without its value, a value of the wrong form. The
// command prints it as one line, points at "<Cmd> -h", and exits 2. Err is
// a *SettingError when one setting is at fault.
type ParseError struct {
	Cmd string // the subcommand: "run", "replay", "demo"
	Err error
}

func (e *ParseError) Error() string { return e.Err.Error() }

func (e *ParseError) Unwrap() error { return e.Err }

// redactURL returns raw fit for an error message: whatever precedes its
// last '@' (a user name, a password, a token) replaced, and its query and
// fragment (api_key=..., a signature) too, whether or not raw parses as a
// URL. When a '?' or '#' precedes that '@' (an '@' in the query, or a '?'
// in the password: the text does not say which), all but the scheme is.
func redactURL(raw string) string {
	q := strings.IndexAny(raw, "?#")
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if q >= 0 && at > q {
		if scheme >= 0 && scheme < q {
			return raw[:scheme+len("://")] + "xxxxx"
		}
		return "xxxxx"
	}
	if at >= 0 {
		start := 0
		if scheme >= 0 && scheme < at {
			start = scheme + len("://")
		}
		raw = raw[:start] + "xxxxx" + raw[at:]
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i+1] + "xxxxx"
	}
	return raw
}
