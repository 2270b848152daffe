package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
	"github.com/castle-destination/castle-destination/internal/selfcert"
)

// testCA is a throw-away certificate authority.
type testCA struct{ *selfcert.CA }

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca, err := selfcert.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca}
}

// mechanism returns the SASL mechanism name (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512) for user and password. The worker builds it from its
// settings in config.
func mechanism(t *testing.T, name, user, password string) sasl.Mechanism {
	t.Helper()
	switch name {
	case "PLAIN":
		return plain.Mechanism{Username: user, Password: password}
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if name == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, user, password)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("unknown SASL mechanism %q", name)
	return nil
}

// serverTLS returns a server configuration with a certificate for 127.0.0.1
// and localhost signed by ca.
func (ca *testCA) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	c, err := ca.ServerTLS("kfake")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startCluster starts a one-topic cluster with cfg's client settings and
// options.
func startCluster(t *testing.T, topic string, partitions int, cfg kafkatest.Config) *kafkatest.Cluster {
	t.Helper()
	cfg.Topics = map[string]int{topic: partitions}
	kc, err := kafkatest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// consumeAll runs a consumer with cfg over the n records of each of
// partitions, acks every record it is handed, and waits for the commits.
// A rebalance (a loaded machine can stall the heartbeat past the session
// timeout) hands records out again: those are acked too, as the worker
// would, so only records never handed out or never committed fail it.
func consumeAll(t *testing.T, kc *kafkatest.Cluster, cfg Config, partitions []int, n int) {
	t.Helper()
	produceN(t, kc, cfg.Topic, partitions, 0, n)
	r := start(t, cfg, 0)
	var got set
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for rec := range r.out {
			got.add(recKey(rec))
			rec.Ack(nil)
		}
	}()
	eventually(t, 20*time.Second, func() string {
		for _, p := range partitions {
			for o := range n {
				if k := fmt.Sprintf("%d@%d", p, o); !got.has(k) {
					return "record " + k + " was not handed out"
				}
			}
		}
		return ""
	})
	want := map[int]int64{}
	for _, p := range partitions {
		want[p] = int64(n)
	}
	waitCommitted(t, kc, cfg.GroupID, cfg.Topic, want)
	r.cancel()
	<-acked
	if err := r.waitDone(t, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// runFails runs a consumer with cfg and returns Run's error, failing if it
// returns nil or takes longer than within.
func runFails(t *testing.T, cfg Config, within time.Duration) error {
	t.Helper()
	c, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), within+30*time.Second)
	defer cancel()
	began := time.Now()
	err = c.Run(ctx, make(chan *Record))
	if err == nil {
		t.Fatal("Run returned nil")
	}
	if took := time.Since(began); took > within {
		t.Errorf("Run took %s to fail, want within %s", took, within)
	}
	return err
}

func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "test CA")
	clientTLS := ca.ClientTLS()
	kc := startCluster(t, "in", 2, kafkatest.Config{
		ClientTLS: clientTLS,
		Opts:      []kfake.Opt{kfake.TLS(ca.serverTLS(t))},
	})

	t.Run("consume", func(t *testing.T) {
		cfg := testConfig(kc, "in", "tls")
		cfg.TLS = clientTLS
		consumeAll(t, kc, cfg, []int{0, 1}, 5)
	})

	t.Run("untrusted CA", func(t *testing.T) {
		cfg := testConfig(kc, "in", "tls-untrusted")
		cfg.TLS = newTestCA(t, "other CA").ClientTLS()
		cfg.JoinTimeout = time.Minute // a verification failure is fatal, not retried
		err := runFails(t, cfg, 10*time.Second)
		t.Logf("untrusted CA: %v", err)
		if !isFatal(err) {
			t.Errorf("Run error %v is not a TLS verification failure", err)
		}
	})

}

func TestSASL(t *testing.T) {
	t.Parallel()
	const user = "castle"
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			const password = "Pa55-w0rd-not-to-leak"
			m := mechanism(t, mech, user, password)
			kc := startCluster(t, "in", 1, kafkatest.Config{
				ClientSASL: m,
				Opts:       []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mech, user, password)},
			})

			cfg := testConfig(kc, "in", "sasl")
			cfg.SASL = m
			consumeAll(t, kc, cfg, []int{0}, 5)

			// A wrong password fails Run. kfake closes the connection on a
			// failed authentication instead of answering
			// SASLAuthenticationFailed as Kafka does, so here it is retried
			// up to JoinTimeout like any connection error.
			const wrong = "Wr0ng-pa55-not-to-leak"
			cfg = testConfig(kc, "in", "sasl-wrong")
			cfg.SASL = mechanism(t, mech, user, wrong)
			cfg.JoinTimeout = 300 * time.Millisecond
			err := runFails(t, cfg, 15*time.Second)
			for _, secret := range []string{wrong, password} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Run error contains a password: %v", err)
				}
			}
			t.Logf("wrong password: %v", err)
			got, cerr := kc.CommittedOffsets(t.Context(), "sasl-wrong", "in")
			if cerr == nil && got[0] != -1 {
				t.Errorf("the wrong-password group committed %v", got)
			} else if cerr != nil && !errors.Is(cerr, kafka.GroupIdNotFound) {
				t.Errorf("committed offsets of the wrong-password group: %v", cerr)
			}

			// No credentials at all fail too.
			cfg.SASL = nil
			t.Logf("no credentials: %v", runFails(t, cfg, 15*time.Second))
		})
	}
}

func TestSASLOverTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "test CA")
	clientTLS := ca.ClientTLS()
	const user, password = "castle", "tls-and-scram-secret"
	m := mechanism(t, "SCRAM-SHA-512", user, password)
	kc := startCluster(t, "in", 2, kafkatest.Config{
		ClientTLS:  clientTLS,
		ClientSASL: m,
		Opts: []kfake.Opt{kfake.TLS(ca.serverTLS(t)), kfake.EnableSASL(),
			kfake.Superuser("SCRAM-SHA-512", user, password)},
	})
	cfg := testConfig(kc, "in", "tls-sasl")
	cfg.TLS, cfg.SASL = clientTLS, sasl.Mechanism(m)
	consumeAll(t, kc, cfg, []int{0, 1}, 5)
}
