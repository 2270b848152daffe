package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Flags is a flag.FlagSet whose every flag may also be set from an
// environment variable. Precedence: command-line flag, then environment,
// then default.
//
// Parse prints nothing: a bad value or an unknown flag comes back as a
// *ParseError naming the setting, and -h as flag.ErrHelp after the usage is
// written to the help output.
type Flags struct {
	fs   *flag.FlagSet
	out  io.Writer
	envs []envBinding
	env  map[string]string // flag name -> environment variable
	// failed is the setting whose value a command-line Set refused last.
	failed *SettingError
}

type envBinding struct {
	env, flag string
	secret    bool
}

// NewFlags returns an empty set named name (the subcommand). The usage
// (-h) goes to help, which should be the standard output: help asked for is
// not an error.
func NewFlags(name string, help io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(help)
	f := &Flags{fs: fs, out: help, env: map[string]string{}}
	fs.Usage = f.defaultUsage
	return f
}

func (f *Flags) defaultUsage() {
	fmt.Fprintf(f.fs.Output(), "Usage: castle-destination %s [flags]\n\n"+
		"Every flag may also be set with the environment variable named after it;\n"+
		"a flag on the command line wins.\n\nFlags:\n", f.fs.Name())
	f.PrintDefaults()
}

// PrintDefaults writes every flag, its kind of value, its usage and its
// default to the help output, in the style of flag.PrintDefaults with the
// double dashes this command's documentation uses.
func (f *Flags) PrintDefaults() {
	w := f.fs.Output()
	f.fs.VisitAll(func(fl *flag.Flag) {
		line := "  --" + fl.Name
		if kind := valueKind(fl.Value); kind != "" {
			line += " " + kind
		}
		usage := fl.Usage
		if d := fl.DefValue; d != "" && d != "false" {
			usage += fmt.Sprintf(" (default %s)", d)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	})
}

// valueKind names what a flag takes, for the usage: "" for a bare boolean.
func valueKind(v flag.Value) string {
	if t, ok := v.(*tracked); ok {
		v = t.Value
	}
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "" // it may stand alone, as --resume does
	}
	switch v := v.(type) {
	case *durationValue:
		return "duration"
	case *intValue:
		return "int"
	case *floatValue:
		return "number"
	case *listValue:
		return "list"
	case *enumValue:
		return strings.Join(slices.DeleteFunc(slices.Clone(v.allowed), func(s string) bool { return s == "" }), "|")
	case *onOffValue:
		return "on|off"
	case *Secret, *trimmedSecret:
		return "secret"
	}
	return "string"
}

// FlagSet returns the underlying flag set, for usage output. A caller may
// replace its Usage function; Parse calls it with the output set to the
// help writer.
func (f *Flags) FlagSet() *flag.FlagSet { return f.fs }

// Var defines a flag with an environment fallback. env may be empty for a
// flag-only setting.
func (f *Flags) Var(v flag.Value, name, env, usage string) {
	_, secret := v.(redactor)
	if env != "" {
		usage = fmt.Sprintf("%s (env %s)", usage, env)
		f.envs = append(f.envs, envBinding{env: env, flag: name, secret: secret})
		f.env[name] = env
	}
	f.fs.Var(&tracked{Value: v, f: f, name: name, secret: secret}, name, usage)
}

// String defines a string setting.
func (f *Flags) String(p *string, name, env, def, usage string) {
	*p = def
	f.Var((*stringValue)(p), name, env, usage)
}

// Enum defines a string setting that takes one of allowed, matched
// case-insensitively and stored in lower case.
func (f *Flags) Enum(p *string, name, env, def string, allowed []string, usage string) {
	*p = def
	f.Var(&enumValue{p: p, allowed: allowed}, name, env, usage)
}

// OnOff defines a boolean setting spelled "on" or "off".
func (f *Flags) OnOff(p *bool, name, env string, def bool, usage string) {
	*p = def
	f.Var((*onOffValue)(p), name, env, usage)
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

// Parse applies the environment (through getenv) and then args. It prints
// nothing on error: the error, a *ParseError, names the environment
// variable and the flag at fault and never contains a secret value. On -h
// it writes the usage to the help output and returns flag.ErrHelp.
func (f *Flags) Parse(args []string, getenv func(string) string) error {
	for _, b := range f.envs {
		v := getenv(b.env)
		if v == "" {
			continue
		}
		f.failed = nil
		if err := f.fs.Set(b.flag, v); err != nil {
			if f.failed != nil {
				return &ParseError{Cmd: f.fs.Name(), Err: f.failed}
			}
			return &ParseError{Cmd: f.fs.Name(), Err: fmt.Errorf("%s: %w", b.env, err)}
		}
	}

	// The flag package prints the error and the whole usage on a bad
	// flag: silence it, and print the usage only when asked for.
	usage, help := f.fs.Usage, false
	f.fs.Usage = func() { help = true }
	f.fs.SetOutput(io.Discard)
	f.failed = nil
	err := f.fs.Parse(args)
	f.fs.Usage = usage
	f.fs.SetOutput(f.out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if help {
			usage()
		}
		return err
	case f.failed != nil:
		return &ParseError{Cmd: f.fs.Name(), Err: f.failed}
	}
	return &ParseError{Cmd: f.fs.Name(), Err: fmt.Errorf("%s: %s", f.fs.Name(), describeFlagError(err))}
}

// describeFlagError rewords the flag package's own errors (an unknown
// flag, a flag without its value) with double dashes, as the usage spells
// flags.
func describeFlagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Sprintf("no such flag --%s", strings.TrimPrefix(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("--%s needs a value", strings.TrimPrefix(name, "-"))
	}
	return msg
}

// Args returns the arguments left after the flags.
func (f *Flags) Args() []string { return f.fs.Args() }

// tracked wraps a flag's value to remember which setting refused its
// input, so Parse can name it by environment variable and flag.
type tracked struct {
	flag.Value
	f      *Flags
	name   string
	secret bool
}

func (t *tracked) Set(v string) error {
	err := t.Value.Set(v)
	if err == nil {
		return nil
	}
	var cause error
	switch {
	case t.secret:
		cause = errors.New("invalid value")
	default:
		cause = fmt.Errorf("%q %w", v, err)
	}
	t.f.failed = &SettingError{Env: t.f.env[t.name], Flag: t.name, Err: cause}
	if t.f.failed.Env == "" {
		t.f.failed.Env = "--" + t.name
	}
	return err
}

// String implements flag.Value; the zero tracked (the flag package makes
// one to find a type's zero value) has no value and prints as "".
func (t *tracked) String() string {
	if t == nil || t.Value == nil {
		return ""
	}
	return t.Value.String()
}

// IsBoolFlag lets a boolean setting be given as a bare --flag.
func (t *tracked) IsBoolFlag() bool {
	b, ok := t.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type enumValue struct {
	p       *string
	allowed []string
}

func (e *enumValue) Set(v string) error {
	l := strings.ToLower(strings.TrimSpace(v))
	if !slices.Contains(e.allowed, l) {
		return fmt.Errorf("is not %s", orList(e.allowed))
	}
	*e.p = l
	return nil
}

func (e *enumValue) String() string {
	if e == nil || e.p == nil {
		return ""
	}
	return *e.p
}

// orList spells choices as "a, b or c".
func orList(choices []string) string {
	quoted := make([]string, 0, len(choices))
	for _, c := range choices {
		if c != "" {
			quoted = append(quoted, c)
		}
	}
	if len(quoted) < 2 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}

type onOffValue bool

func (o *onOffValue) Set(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on":
		*o = true
	case "off":
		*o = false
	default:
		return errors.New("is not on or off")
	}
	return nil
}

func (o *onOffValue) String() string {
	if o != nil && *o {
		return "on"
	}
	return "off"
}

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("is not a boolean (true or false)")
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
		return errors.New("is not an integer")
	}
	*i = intValue(x)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }

type floatValue float64

func (f *floatValue) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return errors.New("is not a number")
	}
	*f = floatValue(x)
	return nil
}
func (f *floatValue) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New(`is not a duration (like "500ms", "30s", "5m")`)
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
