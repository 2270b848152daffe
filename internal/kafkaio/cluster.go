// Package kafkaio holds what every Kafka client of the worker shares: how
// to reach the cluster (brokers, TLS, SASL, client id), the check that a
// topic exists, the classes of Kafka errors the worker tells apart, and a
// writer of records to one topic (Writer) that the dead-letter and verdict
// sinks build on.
//
// No request this package makes allows a topic to be created: the worker
// uses the topics an operator created and fails, naming the setting, when
// one is missing. It does not consume (see consumer), does not decide what
// a record holds (see deadletter), and does not build TLS or SASL settings
// from files or passwords (config does, once, for every client).
package kafkaio

import (
	"crypto/tls"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// DefaultClientID is the client id the worker's Kafka clients send when
// none is set.
const DefaultClientID = "castle-destination"

// DialTimeout bounds connection set-up, TLS and SASL handshakes included.
const DialTimeout = 10 * time.Second

// Cluster holds how to reach a Kafka cluster. It builds every kafka-go
// connection object the project uses (group and partition readers, topic
// writers, admin clients) in one place, so TLS, SASL and the client id are
// applied the same way everywhere.
type Cluster struct {
	Brokers  []string       // host:port, at least one
	TLS      *tls.Config    // nil = plaintext
	SASL     sasl.Mechanism // nil = none
	ClientID string         // "" = DefaultClientID
}

func (c Cluster) clientID() string {
	if c.ClientID == "" {
		return DefaultClientID
	}
	return c.ClientID
}

// Dialer returns a Dialer for readers and consumer groups.
func (c Cluster) Dialer() *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      c.clientID(),
		Timeout:       DialTimeout,
		DualStack:     true,
		TLS:           c.TLS,
		SASLMechanism: c.SASL,
	}
}

// Transport returns a Transport for writers and clients. Callers own it and
// call CloseIdleConnections when done.
//
// A Transport answers metadata requests from a cache it refreshes with one
// request for the topics named here, or, with none, for every topic. Name
// the topics the transport serves: the cache is smaller, and a topic this
// client may not describe then shows as not authorized (a listing of every
// topic just leaves it out, so it would look missing).
func (c Cluster) Transport(metadataTopics ...string) *kafka.Transport {
	return &kafka.Transport{
		ClientID:       c.clientID(),
		DialTimeout:    DialTimeout,
		TLS:            c.TLS,
		SASL:           c.SASL,
		MetadataTopics: slices.Clone(metadataTopics),
	}
}

// Client returns an admin and metadata client over tr (nil: a new
// Transport) whose requests time out after timeout (0: only the request's
// context bounds them).
func (c Cluster) Client(tr *kafka.Transport, timeout time.Duration) *kafka.Client {
	if tr == nil {
		tr = c.Transport()
	}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: timeout, Transport: tr}
}

// String names the brokers, for log lines and errors. It never includes
// credentials: SASL and TLS settings are not part of it.
func (c Cluster) String() string {
	return strings.Join(slices.Clone(c.Brokers), ",")
}
