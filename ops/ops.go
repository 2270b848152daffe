// Package ops serves what operators and orchestrators look at: Prometheus
// metrics on /metrics, liveness on /healthz and readiness on /readyz. It also
// builds the zap logger from the LOG_LEVEL and LOG_FORMAT settings, decides
// which lines of a repeating failure are logged (Throttle), and exports the
// build information as a metric. It knows nothing of Kafka or Castle:
// readiness is a list of named checks.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Check is one readiness condition: nil when satisfied.
type Check struct {
	Name  string
	Check func() error
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	checks []Check
}

// Listen binds addr and returns a server ready to Serve. Binding early lets
// a bad METRICS_ADDR fail at start, with the address in the error.
func Listen(addr string, g prometheus.Gatherer, checks ...Check) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on metrics address: %w", err)
	}
	s := &Server{ln: ln, checks: checks}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	var failed []string
	for _, c := range s.checks {
		if err := c.Check(); err != nil {
			failed = append(failed, c.Name+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, strings.Join(failed, "\n")+"\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// NewLogger builds the zap logger: level is debug, info, warn or error;
// format is json (for machines) or console (for humans); both in any case.
func NewLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(strings.ToLower(level))
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var enc zapcore.Encoder
	switch strings.ToLower(format) {
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("log format %q is not json or console", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}
