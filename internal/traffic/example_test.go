package traffic_test

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/castle-destination/castle-destination/internal/traffic"
)

// A stream for a worker whose CASTLE_API_SECRET is "sk_demo", summarised by
// outcome. Produce each Record to Kafka with its Key and Time, then compare
// what the worker did with the Expects.
func Example() {
	g := traffic.New(traffic.Config{
		Seed:   42,
		Secret: "sk_demo",
		Now:    time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), // time.Now() against a live worker
	})
	var tally traffic.Tally
	for range 2000 {
		tally.Add(g.Next())
	}
	fmt.Println("messages:", tally.Total())
	for _, typ := range slices.Sorted(maps.Keys(tally.Forward)) {
		fmt.Printf("forward %s: %d\n", typ, tally.Forward[typ])
	}
	fmt.Println("identified:", tally.Identified)
	for _, r := range slices.Sorted(maps.Keys(tally.Drop)) {
		fmt.Printf("drop %s: %d\n", r, tally.Drop[r])
	}
	for _, r := range slices.Sorted(maps.Keys(tally.DeadLetter)) {
		fmt.Printf("dead_letter %s: %d\n", r, tally.DeadLetter[r])
	}
	// Output:
	// messages: 2287
	// forward page: 965
	// forward track: 651
	// identified: 173
	// drop duplicate: 34
	// drop integration_disabled: 85
	// drop mobile: 54
	// drop server_side: 147
	// drop unsupported_type: 76
	// dead_letter malformed: 69
	// dead_letter user_jwt_invalid: 33
}
