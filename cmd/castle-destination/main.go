// Command castle-destination forwards Segment analytics messages from Kafka
// (or from archives) to Castle. See README.md.
//
// main parses the subcommand, traps signals and exits; the work happens in
// the run, replay and demo functions, which return errors. Exit codes: 0
// when done (or when help was asked for), 2 for a bad or missing setting
// or command line, 1 for anything else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/version"
)

// usageError is a bad command line that no setting names (a missing or
// unknown subcommand, a stray argument): exit code 2, like the
// *config.SettingError and *config.ParseError that name a setting.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

const usage = `castle-destination: forward Segment analytics messages to Castle.

Usage:
  castle-destination run [flags]      consume a Kafka topic and forward to Castle
  castle-destination replay [flags] SOURCE...
                                      forward archived messages (files, dirs, -, s3://BUCKET/PREFIX,
                                      or a Kafka time range)
  castle-destination demo [flags]     a zero-setup run against an in-process Kafka and Castle API
  castle-destination version          print version, commit and Go version

Every flag has an environment fallback; see "castle-destination run -h".
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err, if any, as one line on stderr and returns the exit
// code. A command line that does not parse gets a second line pointing at
// the subcommand's -h, never the whole usage.
func exitCode(err error, stderr io.Writer) int {
	var (
		ue usageError
		se *config.SettingError
		pe *config.ParseError
	)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &pe):
		fmt.Fprintf(stderr, "castle-destination: %v\n", err)
		fmt.Fprintf(stderr, "Run \"castle-destination %s -h\" for its settings.\n", pe.Cmd)
		return 2
	case errors.As(err, &ue), errors.As(err, &se):
		fmt.Fprintf(stderr, "castle-destination: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "castle-destination: %v\n", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("missing subcommand")}
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], getenv, stdout, stderr)
	case "replay":
		return replayCommand(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "demo":
		return demoCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		v := version.Get()
		fmt.Fprintf(stdout, "castle-destination %s (commit %s, %s)\n", v.Version, v.Commit, v.GoVersion)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError{fmt.Errorf("unknown subcommand %q; \"castle-destination -h\" lists them", args[0])}
	}
}
