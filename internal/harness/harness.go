// Package harness runs the real worker against an in-process
// Kafka-protocol broker (kfake) and a Castle-compatible API on loopback. The
// demo, the bench command and the end-to-end tests share it, so that what
// the demo shows is what the tests check.
package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/internal/selfcert"
	"github.com/castle-destination/castle-destination/internal/traffic"
)

// Secret is the API secret of the local Castle API (and the Secure Mode key
// of the generated traffic). It is not a real secret.
const Secret = "local-demo-secret"

// Options shape an environment. Zero fields take the defaults given.
type Options struct {
	Topic        string // default "segment"
	DLQTopic     string // default "segment-dlq"
	VerdictTopic string // default "castle-verdicts"
	Partitions   int    // default 6
	// Castle configures the local Castle API; Secret is always Secret.
	Castle castleserver.Config
	// DataDir, when set, makes the broker keep its logs, topics and group
	// offsets in that directory, so that RestartBroker brings them back.
	DataDir string
	// TLS serves the Castle API over HTTPS, as Castle is, with a
	// certificate made for the run: Env.CAFile holds the authority that
	// signed it, and Vars points SSL_CERT_FILE at that file, so that a
	// worker started in a child process trusts it.
	TLS bool
}

// Env is a running broker and Castle API.
type Env struct {
	Cluster      *kfake.Cluster
	Brokers      []string
	Topic        string
	DLQTopic     string
	VerdictTopic string
	Castle       *castleserver.Server
	CastleURL    string
	CAFile       string // with Options.TLS: the PEM certificate of the authority behind the Castle API's

	partitions int
	dataDir    string
	transport  *kafka.Transport // of the helpers' admin requests
	httpSrv    *http.Server
	ln         net.Listener
	serveErr   chan error
}

// Start starts a broker with the topics and a Castle API on 127.0.0.1.
func Start(opt Options) (*Env, error) {
	if opt.Topic == "" {
		opt.Topic = "segment"
	}
	if opt.DLQTopic == "" {
		opt.DLQTopic = "segment-dlq"
	}
	if opt.VerdictTopic == "" {
		opt.VerdictTopic = "castle-verdicts"
	}
	if opt.Partitions <= 0 {
		opt.Partitions = 6
	}
	cluster, err := newCluster(opt.Partitions, opt.Topic, opt.DLQTopic, opt.VerdictTopic, opt.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start in-process Kafka: %w", err)
	}
	opt.Castle.Secret = Secret
	srv, err := castleserver.New(opt.Castle)
	if err != nil {
		cluster.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("listen for the local Castle API: %w", err)
	}
	e := &Env{
		Cluster: cluster, Brokers: cluster.ListenAddrs(), Topic: opt.Topic, DLQTopic: opt.DLQTopic, VerdictTopic: opt.VerdictTopic,
		Castle: srv, CastleURL: "http://" + ln.Addr().String(),
		partitions: opt.Partitions, dataDir: opt.DataDir, transport: &kafka.Transport{}, ln: ln, serveErr: make(chan error, 1),
		httpSrv: &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second},
	}
	if opt.TLS {
		cert, file, err := serverCert()
		if err != nil {
			ln.Close()
			cluster.Close()
			return nil, fmt.Errorf("certificate for the local Castle API: %w", err)
		}
		e.CAFile, e.CastleURL = file, "https://"+ln.Addr().String()
		e.httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		go func() { e.serveErr <- e.httpSrv.ServeTLS(ln, "", "") }()
		return e, nil
	}
	go func() { e.serveErr <- e.httpSrv.Serve(ln) }()
	return e, nil
}

func newCluster(partitions int, topic, dlqTopic, verdictTopic, dataDir string, extra ...kfake.Opt) (*kfake.Cluster, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(partitions), topic),
		kfake.SeedTopics(1, dlqTopic),
		kfake.SeedTopics(1, verdictTopic),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	return kfake.NewCluster(append(opts, extra...)...)
}

// RestartBroker stops the broker, leaves it down for the given time (every
// client connection is cut and new ones are refused), and starts it again on
// the same address with its persisted state: records, topics and committed
// offsets. The environment must have been started with a DataDir.
func (e *Env) RestartBroker(down time.Duration) error {
	if e.dataDir == "" {
		return errors.New("restart broker: the environment has no DataDir")
	}
	_, portStr, err := net.SplitHostPort(e.Brokers[0])
	if err != nil {
		return fmt.Errorf("restart broker: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("restart broker: port %q: %w", portStr, err)
	}
	e.Cluster.Close()
	time.Sleep(down)
	c, err := newCluster(e.partitions, e.Topic, e.DLQTopic, e.VerdictTopic, e.dataDir, kfake.Ports(port))
	if err != nil {
		return fmt.Errorf("restart broker on port %d: %w", port, err)
	}
	e.Cluster = c
	// The helpers' pooled connections died with the old broker.
	e.transport.CloseIdleConnections()
	e.transport = &kafka.Transport{}
	return nil
}

// Close stops the Castle API and the broker.
func (e *Env) Close() {
	e.Castle.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.httpSrv.Shutdown(ctx)
	<-e.serveErr
	e.Cluster.Close()
	if e.CAFile != "" {
		_ = os.RemoveAll(filepath.Dir(e.CAFile))
	}
}

// serverCert makes an authority and a certificate it signs for the local
// Castle API, and writes the authority as PEM to a file of a new temporary
// directory.
func serverCert() (tls.Certificate, string, error) {
	ca, err := selfcert.NewCA("local Castle API CA")
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cert, err := ca.Server("local Castle API")
	if err != nil {
		return tls.Certificate{}, "", err
	}
	dir, err := os.MkdirTemp("", "castle-api-tls-")
	if err != nil {
		return tls.Certificate{}, "", err
	}
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, ca.PEM, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return tls.Certificate{}, "", err
	}
	return cert, file, nil
}

// Partitions is the partition count of the topic.
func (e *Env) Partitions() int { return e.partitions }

// Vars returns the environment variables that point the run subcommand at
// this environment, with the given overrides (env names as in the README).
// A test that runs the worker as a child process passes them as its
// environment.
func (e *Env) Vars(overrides map[string]string) map[string]string {
	base := map[string]string{
		"KAFKA_BROKERS":         joinComma(e.Brokers),
		"KAFKA_TOPIC":           e.Topic,
		"DLQ_TOPIC":             e.DLQTopic,
		"CASTLE_API_URL":        e.CastleURL,
		"CASTLE_API_SECRET":     Secret,
		"METRICS_ADDR":          "127.0.0.1:0",
		"KAFKA_SESSION_TIMEOUT": "6s",
		"KAFKA_FETCH_MAX_WAIT":  "100ms",
		// kfake builds a fetch's whole answer before its first byte goes
		// out, and kafka-go gives the answer KAFKA_FETCH_MAX_WAIT to
		// begin: under -race, answers of several MiB (the default allows
		// 10) took longer, every fetch was dropped and sent again, and
		// nothing was ever read. 1 MiB is the broker's largest message.
		"KAFKA_FETCH_MAX_BYTES": "1048576",
		"BATCH_LINGER":          "50ms",
	}
	if e.CAFile != "" {
		base["SSL_CERT_FILE"] = e.CAFile
	}
	for k, v := range overrides {
		base[k] = v
	}
	return base
}

// Config returns the worker settings for this environment: every default
// of the run subcommand, pointed at the broker and the Castle API, with the
// given environment overrides.
func (e *Env) Config(env map[string]string) (config.Config, error) {
	base := e.Vars(env)
	return ParseConfig(func(k string) string { return base[k] })
}

// ParseConfig reads the run settings from getenv, every default applied,
// as a worker started by Vars in a child process does.
func ParseConfig(getenv func(string) string) (config.Config, error) {
	var cfg config.Config
	f := config.NewFlags("run", io.Discard)
	cfg.RegisterRun(f)
	if err := f.Parse(nil, getenv); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// Produce writes records to the topic, keyed as generated, acknowledged by
// the broker before it returns.
func (e *Env) Produce(ctx context.Context, records []traffic.Record) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(e.Brokers...),
		Topic:        e.Topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   512 << 10, // under the broker's 1 MiB message limit
		BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, 0, min(len(records), 5000))
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		err := w.WriteMessages(ctx, msgs...)
		msgs = msgs[:0]
		if err != nil {
			return fmt.Errorf("produce to %s: %w", e.Topic, err)
		}
		return nil
	}
	for _, r := range records {
		msgs = append(msgs, kafka.Message{Key: r.Key, Value: r.Value, Time: r.Time})
		if len(msgs) == cap(msgs) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// Generate makes n records of realistic traffic whose valid Secure Mode
// tokens verify with Secret at now, and tallies what the worker must do
// with them. The user population is wide enough that Castle's per-user rate
// limit does not dominate a short run.
func Generate(seed int64, n int, now time.Time) ([]traffic.Record, traffic.Tally) {
	return generate(NewGenerator(seed, n, now), n)
}

func generate(g *traffic.Generator, n int) ([]traffic.Record, traffic.Tally) {
	recs := make([]traffic.Record, n)
	for i := range recs {
		recs[i] = g.Next()
	}
	var t traffic.Tally
	for _, r := range recs {
		t.Add(r)
	}
	return recs, t
}

// NewGenerator is the generator behind Generate, for streams too large to
// hold in memory: n sizes the user population.
func NewGenerator(seed int64, n int, now time.Time) *traffic.Generator {
	return traffic.New(trafficConfig(seed, n, now))
}

// trafficConfig is the traffic of Generate: n sizes the user population.
func trafficConfig(seed int64, n int, now time.Time) traffic.Config {
	return traffic.Config{
		Seed: seed, Secret: Secret, Now: now,
		Users: max(5000, 2*n), HeavyShare: -1,
	}
}

// ErrIncomplete is returned by Wait when the deadline passes first.
var ErrIncomplete = errors.New("harness: the worker did not settle every message in time")
