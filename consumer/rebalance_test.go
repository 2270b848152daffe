package consumer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

func waitStable(t *testing.T, kc *kafkatest.Cluster, group string, members int) kafkatest.GroupState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := kc.WaitStable(ctx, group, members)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// partitionsOf returns the sorted partitions of recs.
func partitionsOf(recs []*Record) []int {
	seen := map[int]bool{}
	for _, rec := range recs {
		seen[rec.Partition] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// keysOf returns the sorted partition@offset names of recs.
func keysOf(recs []*Record) []string {
	ks := make([]string, len(recs))
	for i, rec := range recs {
		ks[i] = recKey(rec)
	}
	slices.Sort(ks)
	return ks
}

// rangeKeys names offsets [from, to) of each partition, sorted.
func rangeKeys(partitions []int, from, to int) []string {
	var ks []string
	for _, p := range partitions {
		for o := from; o < to; o++ {
			ks = append(ks, fmt.Sprintf("%d@%d", p, o))
		}
	}
	slices.Sort(ks)
	return ks
}

func TestRebalanceFencesLateAcksAndRedelivers(t *testing.T) {
	t.Parallel()
	const parts, n = 4, 10
	all := []int{0, 1, 2, 3}
	kc := kafkatest.New(t, "in", parts)
	produceN(t, kc, "in", all, 0, n)
	cfg := testConfig(kc, "in", "g")

	// A owns everything and acks offsets 0..2 of each partition.
	a := start(t, cfg, 0)
	colA := collect(a)
	oldA := colA.waitLen(t, parts*n, 20*time.Second)
	if got, want := keysOf(oldA), rangeKeys(all, 0, n); !slices.Equal(got, want) {
		t.Fatalf("A received %v, want %v", got, want)
	}
	for _, rec := range oldA {
		if rec.Offset < 3 {
			rec.Ack(nil)
		}
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 3, 1: 3, 2: 3, 3: 3})

	// B joins with A's other 28 records still un-acked.
	b := start(t, cfg, 0)
	colB := collect(b)
	st := waitStable(t, kc, "g", 2)
	for m, ps := range st.Members {
		if len(ps) != 2 {
			t.Fatalf("member %s owns %v, want 2 of the 4 partitions (group %+v)", m, ps, st)
		}
	}
	recsB := colB.waitLen(t, 2*(n-3), 20*time.Second)
	partsB := partitionsOf(recsB)
	partsA := slices.DeleteFunc(slices.Clone(all), func(p int) bool { return slices.Contains(partsB, p) })
	if len(partsB) != 2 || len(partsA) != 2 {
		t.Fatalf("B received records of partitions %v, want 2 partitions", partsB)
	}
	// B re-reads the un-acked records of its partitions, from the commit.
	if got, want := keysOf(recsB), rangeKeys(partsB, 3, n); !slices.Equal(got, want) {
		t.Fatalf("B received %v, want %v", got, want)
	}
	// A's next generation re-reads the un-acked records of the partitions it
	// kept, and nothing of B's.
	newA := colA.waitLen(t, parts*n+2*(n-3), 20*time.Second)[parts*n:]
	if got, want := keysOf(newA), rangeKeys(partsA, 3, n); !slices.Equal(got, want) {
		t.Fatalf("A's new generation received %v, want %v", got, want)
	}

	// A now acks its old generation's records: all late, none commits.
	acksBefore := value(t, a.c.metrics.acks)
	for _, rec := range oldA {
		rec.Ack(nil)
	}
	if got := value(t, a.c.metrics.lateAcks); got != parts*(n-3) {
		t.Errorf("A counted %v late acks, want %d", got, parts*(n-3))
	}
	if got := value(t, a.c.metrics.acks); got != acksBefore {
		t.Errorf("A's acks went from %v to %v on acking an ended generation's records", acksBefore, got)
	}
	if got := value(t, a.c.metrics.abandoned); got != parts*(n-3) {
		t.Errorf("A abandoned %v records at the rebalance, want %d", got, parts*(n-3))
	}
	// Give A's committer ticks to (wrongly) commit: its new generation
	// commits on every tick, so wait until it has set its in-flight gauges
	// after the late acks.
	commitsBefore := value(t, a.c.metrics.commits)
	newA[0].Ack(nil)
	eventually(t, 20*time.Second, func() string {
		if got := value(t, a.c.metrics.commits); got <= commitsBefore {
			return fmt.Sprintf("A's commits stayed at %v", got)
		}
		return ""
	})
	got := committed(t, kc, "g", "in")
	for _, p := range partsB {
		if got[p] != 3 {
			t.Fatalf("committed %v: partition %d, owned by B with nothing acked, moved from 3", got, p)
		}
	}
	if p := newA[0].Partition; got[p] != 4 {
		t.Fatalf("committed %v: partition %d should be at 4 after A's first new ack", got, p)
	}

	// Everyone acks: the commits reach the log end.
	for _, rec := range append(recsB, newA...) {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n, 1: n, 2: n, 3: n})
	var union set
	for _, rec := range append(colA.snapshot(), colB.snapshot()...) {
		union.add(recKey(rec))
	}
	for _, k := range rangeKeys(all, 0, n) {
		if !union.has(k) {
			t.Errorf("record %s was never received", k)
		}
	}
	if got := value(t, b.c.metrics.lateAcks); got != 0 {
		t.Errorf("B counted %v late acks, want 0", got)
	}

	// B leaves: A takes back all four partitions.
	b.cancel()
	if err := b.waitDone(t, 30*time.Second); err != nil {
		t.Fatalf("B's Run: %v", err)
	}
	st = waitStable(t, kc, "g", 1)
	for _, ps := range st.Members {
		if !slices.Equal(ps, all) {
			t.Fatalf("A owns %v after B left, want %v", ps, all)
		}
	}
	seen := colA.len()
	produceN(t, kc, "in", all, n, 5)
	back := colA.waitLen(t, seen+parts*5, 20*time.Second)[seen:]
	if got, want := keysOf(back), rangeKeys(all, n, n+5); !slices.Equal(got, want) {
		t.Fatalf("A received %v after B left, want %v", got, want)
	}
	for _, rec := range back {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n + 5, 1: n + 5, 2: n + 5, 3: n + 5})
	a.cancel()
	if err := a.waitDone(t, 30*time.Second); err != nil {
		t.Fatalf("A's Run: %v", err)
	}
	<-colA.done
	if extra := colA.len() - seen - parts*5; extra != 0 {
		t.Errorf("A received %d records beyond the new ones after B left", extra)
	}
}

func TestRebalanceDrainCommitsAcksAfterGenerationEnd(t *testing.T) {
	t.Parallel()
	const n = 10
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, n)
	cfg := testConfig(kc, "in", "g")
	cfg.SessionTimeout = 4 * time.Second
	cfg.RebalanceTimeout = 6 * time.Second
	cfg.RebalanceDrain = 3 * time.Second

	// A's log tells when its heartbeat failed, which ends its generation.
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())).Named("A")
	a := startLogged(t, cfg, 0, nil, logger)
	colA := collect(a)
	oldA := colA.waitLen(t, 2*n, 20*time.Second)

	b := start(t, cfg, 0)
	colB := collect(b)
	eventually(t, 20*time.Second, func() string {
		if logs.FilterMessageSnippet("stopped heartbeat").Len() == 0 {
			return "A's heartbeat has not stopped"
		}
		return ""
	})
	// The generation is over; A acks everything within RebalanceDrain, in
	// two steps so the second comes while the supervisor drains: the first
	// half is committed (by the ended generation) before the second is acked.
	for _, rec := range oldA {
		if rec.Offset < n/2 {
			rec.Ack(nil)
		}
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n / 2, 1: n / 2})
	for _, rec := range oldA {
		if rec.Offset >= n/2 {
			rec.Ack(nil)
		}
	}
	waitStable(t, kc, "g", 2)
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n, 1: n})
	if got := value(t, a.c.metrics.lateAcks); got != 0 {
		t.Errorf("A counted %v late acks within RebalanceDrain, want 0", got)
	}
	if got := value(t, a.c.metrics.abandoned); got != 0 {
		t.Errorf("A abandoned %v records, want 0", got)
	}
	if got := value(t, a.c.metrics.commitErrors); got != 0 {
		t.Errorf("A had %v commit errors, want 0", got)
	}

	// Nothing acked is read again: the next records each member gets are
	// the new ones.
	produceN(t, kc, "in", []int{0, 1}, n, 1)
	eventually(t, 20*time.Second, func() string {
		if got := colA.len() - 2*n + colB.len(); got < 2 {
			return fmt.Sprintf("A and B received %d of the 2 new records", got)
		}
		return ""
	})
	got := keysOf(append(colA.snapshot()[2*n:], colB.snapshot()...))
	if want := []string{"0@10", "1@10"}; !slices.Equal(got, want) {
		t.Fatalf("after the rebalance A and B received %v, want %v", got, want)
	}
	if colB.len() != 1 {
		t.Errorf("B received %d records, want 1 (one partition each)", colB.len())
	}
	for _, rec := range append(colA.snapshot()[2*n:], colB.snapshot()...) {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n + 1, 1: n + 1})
}

func TestMemberWithoutPartitionsIsReady(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	cfg := testConfig(kc, "in", "g")
	a := start(t, cfg, 0)
	colA := collect(a)
	b := start(t, cfg, 0)
	colB := collect(b)
	st := waitStable(t, kc, "g", 2)
	owners := 0
	for _, ps := range st.Members {
		if len(ps) > 0 {
			owners++
		}
	}
	if owners != 1 {
		t.Fatalf("group %+v: want exactly one member owning the partition", st)
	}
	// Both are ready, the one without a partition included.
	eventually(t, 20*time.Second, func() string {
		for name, r := range map[string]*running{"A": a, "B": b} {
			if err := r.c.Ready(); err != nil {
				return fmt.Sprintf("%s not ready: %v", name, err)
			}
		}
		return ""
	})
	produceN(t, kc, "in", []int{0}, 0, 5)
	eventually(t, 20*time.Second, func() string {
		if got := colA.len() + colB.len(); got < 5 {
			return fmt.Sprintf("received %d of 5 records", got)
		}
		return ""
	})
	if colA.len() != 0 && colB.len() != 0 {
		t.Fatalf("both members received records (A %d, B %d)", colA.len(), colB.len())
	}
	for _, rec := range append(colA.snapshot(), colB.snapshot()...) {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 5})
}
