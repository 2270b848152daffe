package harness

import (
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
)

// Limits is a pair of per-user rate limits that agree: what the local
// Castle API enforces and what the worker paces to.
type Limits struct {
	// Server goes into Options.Castle.Limits.
	Server []castleserver.Limit
	// Client goes into the worker's pacing (worker.Options.UserRate).
	Client destination.UserRate
}

// FastLimits returns Castle's documented per-user limits with every window
// shortened by factor: the same counts (6 requests in a window, 10 in a
// window five times as long) over a factor-th of the time. The client keeps
// destination's default slack, which absorbs the jitter between a send and
// its arrival on a loaded machine.
//
// End-to-end tests run the worker on real time. With Castle's real windows
// one user's burst (a browser batch envelope holds up to 20 of its
// messages) waits 5 to 10 seconds, and a test of thousands of records waits
// for its slowest users. Pacing itself is proved against the real limits in
// destination's tests; tests whose point is elsewhere keep the pacing in the
// loop but do not wait on it for long.
func FastLimits(factor int) Limits {
	factor = max(factor, 1)
	client := destination.DefaultUserRate()
	client.Windows = nil
	server := make([]castleserver.Limit, 0, len(castleserver.DefaultLimits))
	for _, l := range castleserver.DefaultLimits {
		per := l.Per / time.Duration(factor)
		server = append(server, castleserver.Limit{Requests: l.Requests, Per: per})
		client.Windows = append(client.Windows, destination.RateWindow{Requests: l.Requests, Per: per})
	}
	return Limits{Server: server, Client: client}
}
