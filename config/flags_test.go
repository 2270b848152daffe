package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func runFlags(help *bytes.Buffer) (*Flags, *Config) {
	var c Config
	f := NewFlags("run", help)
	c.RegisterRun(f)
	return f, &c
}

// -h writes the usage to the help writer; every setting is listed with its
// environment variable.
func TestHelpGoesToTheHelpWriter(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		var help bytes.Buffer
		f, _ := runFlags(&help)
		if err := f.Parse([]string{arg}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: Parse = %v, want flag.ErrHelp", arg, err)
		}
		out := help.String()
		for _, want := range []string{"Usage: castle-destination run [flags]", "--kafka-brokers list", "(env KAFKA_BROKERS)",
			"--log-level debug|info|warn|error", "(default info)", "--castle-scoring on|off", "--castle-api-secret secret"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out)
			}
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "dry-run") {
			t.Errorf("%s: usage mentions a panic or --dry-run:\n%s", arg, out)
		}
	}
}

// A bad value or an unknown flag prints nothing (no usage dump): the error
// alone says what is wrong.
func TestBadFlagPrintsNothing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kafka-session-timeout", "1x"}, `KAFKA_SESSION_TIMEOUT (--kafka-session-timeout): "1x" is not a duration`},
		{[]string{"--kafka-tls=maybe"}, `KAFKA_TLS (--kafka-tls): "maybe" is not a boolean`},
		{[]string{"--no-such-thing"}, "run: no such flag --no-such-thing"},
		{[]string{"--kafka-topic"}, "run: --kafka-topic needs a value"},
		{[]string{"-kafka-max-in-flight", "lots"}, `KAFKA_MAX_IN_FLIGHT (--kafka-max-in-flight): "lots" is not an integer`},
	} {
		var help bytes.Buffer
		f, _ := runFlags(&help)
		err := f.Parse(tc.args, func(string) string { return "" })
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Cmd != "run" {
			t.Errorf("%v: Parse = %v, want a ParseError of run", tc.args, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: error = %q, want it to start with %q", tc.args, err, tc.want)
		}
		if help.Len() != 0 {
			t.Errorf("%v: Parse printed:\n%s", tc.args, help.String())
		}
	}
	// After a failed Parse the flag set still prints its usage on request.
	var help bytes.Buffer
	f, _ := runFlags(&help)
	_ = f.Parse([]string{"--no-such-thing"}, func(string) string { return "" })
	f.FlagSet().Usage()
	if !strings.Contains(help.String(), "--kafka-topic") {
		t.Errorf("usage after a failed Parse:\n%s", help.String())
	}
}

// A caller's own Usage (replay's) is called on -h, writing to the help
// writer.
func TestCustomUsage(t *testing.T) {
	var help bytes.Buffer
	var c Config
	f := NewFlags("replay", &help)
	c.RegisterReplay(f)
	f.FlagSet().Usage = func() {
		f.FlagSet().Output().Write([]byte("Usage: castle-destination replay [flags] SOURCE...\n"))
		f.PrintDefaults()
	}
	if err := f.Parse([]string{"-h"}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse = %v", err)
	}
	if out := help.String(); !strings.HasPrefix(out, "Usage: castle-destination replay") || !strings.Contains(out, "--dlq-topic") {
		t.Errorf("usage:\n%s", out)
	}
}
