package harness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/segmentio/kafka-go"
)

func (e *Env) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(e.Brokers...), Timeout: 10 * time.Second, Transport: e.transport}
}

// Committed returns the group's committed offset per partition of the
// topic (-1 where none). A group the broker does not know yet has
// committed nothing: kfake answers GROUP_ID_NOT_FOUND until a member has
// joined, where Kafka answers -1 offsets, so a poll that starts before
// the worker's first join reads -1s rather than failing.
func (e *Env) Committed(ctx context.Context, group string) (map[int]int64, error) {
	parts := make([]int, e.partitions)
	for i := range parts {
		parts[i] = i
	}
	res, err := e.client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{e.Topic: parts},
	})
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	out := make(map[int]int64, e.partitions)
	if errors.Is(res.Error, kafka.GroupIdNotFound) {
		for _, p := range parts {
			out[p] = -1
		}
		return out, nil
	}
	if res.Error != nil {
		return nil, fmt.Errorf("offset fetch: %w", res.Error)
	}
	for _, p := range res.Topics[e.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offset fetch partition %d: %w", p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// LogEnd returns the next offset to be written, per partition of topic.
func (e *Env) LogEnd(ctx context.Context, topic string) (map[int]int64, error) {
	n := e.partitions
	if topic != e.Topic {
		n = 1
	}
	reqs := make([]kafka.OffsetRequest, n)
	for i := range reqs {
		reqs[i] = kafka.LastOffsetOf(i)
	}
	res, err := e.client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make(map[int]int64, n)
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offsets partition %d: %w", p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out, nil
}

// WaitCommitted polls until the group's committed offsets reach the end of
// the topic as it is when called, or ctx ends.
func (e *Env) WaitCommitted(ctx context.Context, group string) error {
	end, err := e.LogEnd(ctx, e.Topic)
	if err != nil {
		return err
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		got, err := e.Committed(ctx, group)
		if err != nil {
			return err
		}
		if maps.Equal(got, end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("committed offsets %v, want the log end %v: %w", got, end, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// ReadAll returns every message of a topic partition up to its current end.
func (e *Env) ReadAll(ctx context.Context, topic string, partition int) ([]kafka.Message, error) {
	ends, err := e.LogEnd(ctx, topic)
	if err != nil {
		return nil, err
	}
	end := ends[partition]
	if end == 0 {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.Brokers, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for int64(len(out)) < end {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return out, fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Members returns the group's state ("Stable", "PreparingRebalance", ...)
// and, per member id, the partitions of the topic assigned to it.
func (e *Env) Members(ctx context.Context, group string) (string, map[string][]int, error) {
	res, err := e.client().DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return "", nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	if len(res.Groups) != 1 {
		return "", nil, fmt.Errorf("describe group %s: %d groups in the answer", group, len(res.Groups))
	}
	g := res.Groups[0]
	if g.Error != nil {
		return "", nil, fmt.Errorf("describe group %s: %w", group, g.Error)
	}
	out := make(map[string][]int, len(g.Members))
	for _, m := range g.Members {
		var parts []int
		for _, tp := range m.MemberAssignments.Topics {
			if tp.Topic == e.Topic {
				parts = append(parts, tp.Partitions...)
			}
		}
		out[m.MemberID] = parts
	}
	return g.GroupState, out, nil
}

// WaitMembers polls until the group is Stable with n members that each own
// a partition of the topic, or ctx ends. It returns the assignment. A test
// that must act while partitions are shared waits for this instead of
// guessing how long a rebalance takes.
func (e *Env) WaitMembers(ctx context.Context, group string, n int) (map[string][]int, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		state, members, err := e.Members(ctx, group)
		if err != nil {
			return nil, err
		}
		owning := 0
		for _, parts := range members {
			if len(parts) > 0 {
				owning++
			}
		}
		if state == "Stable" && len(members) == n && owning == n {
			return members, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("group %s is %s with members %v, want Stable with %d owning partitions: %w", group, state, members, n, context.Cause(ctx))
		case <-t.C:
		}
	}
}
