// Package kafkatest starts an in-process Kafka-protocol cluster (franz-go's
// kfake, real TCP on 127.0.0.1) and offers the few admin helpers tests and the
// demo need: produce, committed and log-end offsets, waiting for a group to be
// Stable.
//
// Start needs no *testing.T (the demo uses it); New is the test shorthand that
// fails the test on error and closes the cluster on cleanup.
package kafkatest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures a cluster.
type Config struct {
	// Topics to create, name -> partition count.
	Topics map[string]int
	// Brokers is the broker count (default 1).
	Brokers int
	// GroupMinSessionTimeout lowers the broker's minimum group session
	// timeout so tests can use short sessions (default 100 ms; Kafka's is
	// 6 s).
	GroupMinSessionTimeout time.Duration
	// ClientTLS and ClientSASL are how this package's own clients connect,
	// when the cluster is started with kfake.TLS or kfake.EnableSASL in Opts.
	ClientTLS  *tls.Config
	ClientSASL sasl.Mechanism
	// Opts are passed to kfake.NewCluster after this package's defaults,
	// so they win.
	Opts []kfake.Opt
}

// Cluster is a running in-process cluster.
type Cluster struct {
	fake      *kfake.Cluster
	addrs     []string
	transport *kafka.Transport
	client    *kafka.Client
}

// Start starts a cluster. Close it when done.
func Start(cfg Config) (*Cluster, error) {
	brokers := cfg.Brokers
	if brokers <= 0 {
		brokers = 1
	}
	minSession := cfg.GroupMinSessionTimeout
	if minSession <= 0 {
		minSession = 100 * time.Millisecond
	}
	opts := []kfake.Opt{kfake.NumBrokers(brokers), kfake.GroupMinSessionTimeout(minSession)}
	for topic, n := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(int32(n), topic))
	}
	opts = append(opts, cfg.Opts...)
	fake, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake cluster: %w", err)
	}
	addrs := fake.ListenAddrs()
	tr := &kafka.Transport{ClientID: "kafkatest", TLS: cfg.ClientTLS, SASL: cfg.ClientSASL, DialTimeout: 5 * time.Second}
	return &Cluster{
		fake:      fake,
		addrs:     addrs,
		transport: tr,
		client:    &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second, Transport: tr},
	}, nil
}

// New starts a cluster with one topic of the given partition count (and any
// extra kfake options), failing tb on error; the cluster closes on cleanup.
func New(tb testing.TB, topic string, partitions int, opts ...kfake.Opt) *Cluster {
	tb.Helper()
	c, err := Start(Config{Topics: map[string]int{topic: partitions}, Opts: opts})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Close stops the cluster.
func (c *Cluster) Close() {
	c.transport.CloseIdleConnections()
	c.fake.Close()
}

// Addrs returns the brokers' host:port addresses.
func (c *Cluster) Addrs() []string { return slices.Clone(c.addrs) }

// Fake returns the underlying kfake cluster (to add users, move partitions,
// inject faults...).
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// Client returns an admin client connected to the cluster.
func (c *Cluster) Client() *kafka.Client { return c.client }

// CreateTopic creates a topic.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int) error {
	resp, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1},
	}})
	if err != nil {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	return nil
}

// Produce writes msgs to topic, hashing keys to partitions (kafka-go's
// Writer ignores Message.Partition: use ProduceTo for a fixed partition), and
// returns once all replicas acked.
func (c *Cluster) Produce(ctx context.Context, topic string, msgs ...kafka.Message) error {
	return c.produce(ctx, topic, &kafka.Hash{}, msgs)
}

// ProduceTo writes msgs to one partition of topic.
func (c *Cluster) ProduceTo(ctx context.Context, topic string, partition int, msgs ...kafka.Message) error {
	return c.produce(ctx, topic, kafka.BalancerFunc(func(kafka.Message, ...int) int { return partition }), msgs)
}

func (c *Cluster) produce(ctx context.Context, topic string, b kafka.Balancer, msgs []kafka.Message) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(c.addrs...),
		Topic:        topic,
		Balancer:     b,
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   1 << 20,
		BatchTimeout: time.Millisecond,
		Transport:    c.transport,
	}
	err := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("produce %d messages to %q: %w", len(msgs), topic, err)
	}
	return nil
}

// Partitions returns the partition IDs of topic, sorted.
func (c *Cluster) Partitions(ctx context.Context, topic string) ([]int, error) {
	resp, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %q: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %q: %w", topic, t.Error)
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("metadata of %q: %w", topic, kafka.UnknownTopicOrPartition)
}

// LogEndOffsets returns the log-end offset (the next offset to be written) of
// each partition of topic.
func (c *Cluster) LogEndOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	ids, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, len(ids))
	for i, p := range ids {
		reqs[i] = kafka.LastOffsetOf(p)
	}
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %q: %w", topic, err)
	}
	out := make(map[int]int64, len(ids))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %q partition %d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// CommittedOffsets returns the offsets group committed for each partition of
// topic; -1 for a partition without a commit.
func (c *Cluster) CommittedOffsets(ctx context.Context, group, topic string) (map[int]int64, error) {
	ids, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, resp.Error)
	}
	out := make(map[int]int64, len(ids))
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch offsets of group %q partition %d: %w", group, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// GroupState is a group's state and its members' assigned partitions of
// every topic, keyed by member ID.
type GroupState struct {
	State   string
	Members map[string][]int
}

// DescribeGroup returns the state of group.
func (c *Cluster) DescribeGroup(ctx context.Context, group string) (GroupState, error) {
	resp, err := c.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return GroupState{}, fmt.Errorf("describe group %q: %w", group, err)
	}
	for _, g := range resp.Groups {
		if g.GroupID != group {
			continue
		}
		if g.Error != nil {
			return GroupState{}, fmt.Errorf("describe group %q: %w", group, g.Error)
		}
		st := GroupState{State: g.GroupState, Members: make(map[string][]int, len(g.Members))}
		for _, m := range g.Members {
			var ps []int
			for _, t := range m.MemberAssignments.Topics {
				ps = append(ps, t.Partitions...)
			}
			slices.Sort(ps)
			st.Members[m.MemberID] = ps
		}
		return st, nil
	}
	return GroupState{}, fmt.Errorf("describe group %q: not in the response", group)
}

// WaitStable polls until group is Stable with exactly members members, or
// ctx ends. It returns the last state seen.
func (c *Cluster) WaitStable(ctx context.Context, group string, members int) (GroupState, error) {
	var last GroupState
	var lastErr error
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.DescribeGroup(ctx, group)
		if err == nil && st.State == "Stable" && len(st.Members) == members {
			return st, nil
		}
		if err == nil {
			last = st
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return last, errors.Join(fmt.Errorf("group %q not Stable with %d members (last state %q, %d members): %w",
				group, members, last.State, len(last.Members), ctx.Err()), lastErr)
		case <-tick.C:
		}
	}
}
