package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Flags is a flag.FlagSet whose every flag may also be set from an
// environment variable. Precedence: command-line flag, then environment,
// then default.
type Flags struct {
	fs   *flag.FlagSet
	envs []envBinding
}

type envBinding struct {
	env, flag string
	secret    bool
}

// NewFlags returns an empty set named name (the subcommand). Parse errors are
// returned, never printed-and-exited; usage goes to out.
func NewFlags(name string, out io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &Flags{fs: fs}
}

// FlagSet returns the underlying flag set, for usage output.
func (f *Flags) FlagSet() *flag.FlagSet { return f.fs }

// Var defines a flag with an environment fallback. env may be empty for a
// flag-only setting.
func (f *Flags) Var(v flag.Value, name, env, usage string) {
	if env != "" {
		usage = fmt.Sprintf("%s (env %s)", usage, env)
		_, secret := v.(redactor)
		f.envs = append(f.envs, envBinding{env: env, flag: name, secret: secret})
	}
	f.fs.Var(v, name, usage)
}

// String defines a string setting.
func (f *Flags) String(p *string, name, env, def, usage string) {
	*p = def
	f.Var((*stringValue)(p), name, env, usage)
}

// Bool defines a boolean setting.
func (f *Flags) Bool(p *bool, name, env string, def bool, usage string) {
	*p = def
	f.Var((*boolValue)(p), name, env, usage)
}

// Int defines an integer setting.
func (f *Flags) Int(p *int, name, env string, def int, usage string) {
	*p = def
	f.Var((*intValue)(p), name, env, usage)
}

// Float defines a floating-point setting.
func (f *Flags) Float(p *float64, name, env string, def float64, usage string) {
	*p = def
	f.Var((*floatValue)(p), name, env, usage)
}

// Duration defines a duration setting ("500ms", "30s", "5m").
func (f *Flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	*p = def
	f.Var((*durationValue)(p), name, env, usage)
}

// List defines a comma-separated list setting.
func (f *Flags) List(p *[]string, name, env, usage string) {
	f.Var((*listValue)(p), name, env, usage)
}

// SecretVar defines a secret setting: it never prints.
func (f *Flags) SecretVar(p *Secret, name, env, usage string) {
	f.Var(p, name, env, usage)
}

// Parse applies the environment (through getenv) and then args. An error
// names the environment variable or the flag at fault and never contains a
// secret value.
func (f *Flags) Parse(args []string, getenv func(string) string) error {
	for _, b := range f.envs {
		v := getenv(b.env)
		if v == "" {
			continue
		}
		if err := f.fs.Set(b.flag, v); err != nil {
			if b.secret {
				return fmt.Errorf("%s: invalid value", b.env)
			}
			return fmt.Errorf("%s=%q: %w", b.env, v, unwrapFlagErr(err))
		}
	}
	return f.fs.Parse(args)
}

// Args returns the arguments left after the flags.
func (f *Flags) Args() []string { return f.fs.Args() }

func unwrapFlagErr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("not a boolean (true or false)")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (i *intValue) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	*i = intValue(x)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }

type floatValue float64

func (f *floatValue) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*f = floatValue(x)
	return nil
}
func (f *floatValue) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New(`not a duration (like "500ms", "30s", "5m")`)
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }

type listValue []string

func (l *listValue) Set(v string) error {
	*l = (*l)[:0]
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set implements flag.Value.
func (s *Secret) Set(v string) error { *s = Secret(v); return nil }

// redactor marks a flag value whose input must never appear in an error.
type redactor interface{ redacts() }

func (*Secret) redacts() {}
