package pipeline_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/pipeline"
)

func TestDedupeWindow(t *testing.T) {
	d := pipeline.NewDedupe(3)
	for _, id := range []string{"a", "b", "c"} {
		if !d.Add(id) {
			t.Fatalf("%s: first sight is a duplicate", id)
		}
	}
	if d.Add("a") {
		t.Fatal("a repeated within the window is new")
	}
	if !d.Add("d") || !d.Add("a") {
		t.Fatal("after d evicted a (FIFO), a should be new again")
	}
	d.Forget("d")
	if !d.Add("d") {
		t.Fatal("a forgotten id is still a duplicate")
	}
	if d.Len() > 3 {
		t.Fatalf("window holds %d ids, bound 3", d.Len())
	}
}

// A messageId already forwarded is dropped as a duplicate, in the same
// record or a later one; messages without one are never duplicates.
func TestDuplicatesDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{DedupeSize: 100}, destination.Config{})
		defer r.stop()
		noID := `{"type":"track","event":"No Id","userId":"u","channel":"client","context":{"library":{"name":"analytics.js"}}}`
		env := `{"batch":[` + track("a", 1) + `,` + track("a", 1) + `]}`
		a := &acker{}
		if err := r.run(context.Background(), record(0, env, a), record(1, track("a", 1), a), record(2, noID, a), record(3, noID, a)); err != nil {
			t.Fatal(err)
		}
		o := r.outcomes(t)
		if o.Dropped["duplicate"] != 2 || o.Forwarded["track"] != 3 || a.n.Load() != 4 {
			t.Errorf("dropped %v, forwarded %v, acked %d; want 2 duplicates, 3 forwarded, 4 acked", o.Dropped, o.Forwarded, a.n.Load())
		}
	})
}

// An identify sets the user of that user's later messages, in the same
// envelope and in later records.
func TestIdentifySetsLaterUsers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{UserCacheSize: 10}, destination.Config{})
		defer r.stop()
		identify := `{"type":"identify","userId":"a","channel":"client","traits":{"email":"a@example.com"},"context":{"library":{"name":"analytics.js"}}}`
		env := `{"batch":[` + identify + `,` + track("a", 1) + `]}`
		if err := r.run(context.Background(), record(0, env, nil), record(1, track("a", 2), nil)); err != nil {
			t.Fatal(err)
		}
		acc := r.srv.Accepted()
		if len(acc) != 2 {
			t.Fatalf("accepted %d, want 2", len(acc))
		}
		for _, rec := range acc {
			if !contains(rec.Body, `"email":"a@example.com"`) {
				t.Errorf("event without the identified email: %s", rec.Body)
			}
		}
	})
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// The window behaves like a FIFO set of the last size ids, with Forget,
// over random operations that fill, evict, forget and grow its table.
func TestDedupeAgainstModel(t *testing.T) {
	for _, size := range []int{1, 7, 100, 5000, 20_000} {
		d := pipeline.NewDedupe(size)
		// The model: ids in arrival order, evicted from the front; a
		// forgotten id leaves an empty place that is evicted in its turn.
		var order []string
		in := map[string]bool{}
		rng := rand.New(rand.NewPCG(uint64(size), 1))
		for i := range 50_000 {
			id := fmt.Sprint("id-", rng.IntN(3*size+10))
			if rng.IntN(10) == 0 {
				d.Forget(id)
				if in[id] {
					order[slices.Index(order, id)] = ""
					delete(in, id)
				}
				continue
			}
			got := d.Add(id)
			want := !in[id]
			if got != want {
				t.Fatalf("size %d, op %d: Add(%s) = %v, want %v", size, i, id, got, want)
			}
			if want {
				if len(order) == size {
					if order[0] != "" {
						delete(in, order[0])
					}
					order = order[1:]
				}
				order = append(order, id)
				in[id] = true
			}
		}
		if d.Len() != len(in) {
			t.Errorf("size %d: Len() = %d, want %d", size, d.Len(), len(in))
		}
	}
}

// The window's memory per id when full (reported, for the README's
// figures): go test ./pipeline -run XXX -bench DedupeFull -benchmem.
func BenchmarkDedupeFull(b *testing.B) {
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = fmt.Sprint("ajs-next-", 1_000_000_000+i)
	}
	b.ReportAllocs()
	for b.Loop() {
		d := pipeline.NewDedupe(1_000_000)
		for _, id := range ids {
			d.Add(id)
		}
	}
}
