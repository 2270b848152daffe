// Command castle-server runs the Castle-compatible API server of package
// castleserver on loopback, for a local dry run of the worker:
//
//	CASTLE_API_SECRET=dev go run ./cmd/castle-server -addr 127.0.0.1:8089 -dump accepted.ndjson
//	CASTLE_API_SECRET=dev CASTLE_API_URL=http://127.0.0.1:8089 castle-destination run ...
//
// It serves POST /v1/log, /v1/risk and /v1/filter and enforces what Castle
// documents for them (Basic auth with the secret, the fields of each
// endpoint, request tokens on risk and filter, the per-user rate limit);
// risk and filter answer 201 with a verdict from the server's documented
// rules. On SIGINT or SIGTERM it writes what it accepted to the -dump file
// as NDJSON, one {"path","body","response"} object a line.
//
// Risk and filter need a fresh request token (valid for 120 s); -mint-token
// prints one and exits:
//
//	curl -u :dev -H 'Content-Type: application/json' http://127.0.0.1:8089/v1/risk -d '{"type":"$login",
//	  "status":"$succeeded","request_token":"'"$(go run ./cmd/castle-server -mint-token laptop)"'",
//	  "user":{"id":"u1"},"context":{"ip":"81.2.69.142","headers":{"User-Agent":"curl"}}}'
//
// The secret comes only from the environment, never a flag, so it does
// not show in the process list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "castle-server:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// run serves until ctx ends, then dumps what was accepted. It reports the
// address it listens on to out, so a caller that asked for port 0 learns
// the port.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("castle-server", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address (keep it on loopback)")
	dump := fs.String("dump", "", `on exit, write the accepted requests here as NDJSON: {"path","body","response"} a line`)
	noLimit := fs.Bool("no-rate-limit", false, "disable the per-user rate limit (6/s and 10 per 5 s)")
	maxRecords := fs.Int("max-records", 100_000, "accepted requests kept for -dump (later ones are only counted); negative keeps all")
	mint := fs.String("mint-token", "", "print a request token minted now for this device name, and exit")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *mint != "" {
		_, err := fmt.Fprintln(out, castleserver.NewRequestToken(time.Now(), *mint))
		return err
	}
	secret := getenv("CASTLE_API_SECRET")
	if secret == "" {
		return fmt.Errorf("%w: CASTLE_API_SECRET is not set: the server needs the secret clients must send", errUsage)
	}
	srv, err := castleserver.New(castleserver.Config{Secret: secret, RateLimitOff: *noLimit, MaxRecords: *maxRecords})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(out, "castle-server: listening on http://%s (POST %s, %s, %s)\n", ln.Addr(),
		castleserver.LogPath, castleserver.RiskPath, castleserver.FilterPath)

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		hs.Close()
	}
	st := srv.Stats()
	fmt.Fprintf(out, "castle-server: %d requests, %d accepted (by path %v), by status %v\n", st.Requests, st.Accepted, st.ByPath, st.ByStatus)
	if *dump == "" {
		return nil
	}
	f, err := os.Create(*dump)
	if err != nil {
		return err
	}
	if err := srv.WriteNDJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "castle-server: wrote the accepted requests to %s\n", *dump)
	return nil
}
