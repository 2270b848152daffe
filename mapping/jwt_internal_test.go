package mapping

import (
	"fmt"
	"testing"
)

// A token in use survives rollovers; an idle one is dropped after two; the
// cache never holds more than two generations.
func TestTokenCacheKeepsTokensInUse(t *testing.T) {
	var c tokenCache
	hot, idle := &verified{}, &verified{}
	c.put("hot", hot)
	c.put("idle", idle)
	for i := range 5 * tokenGeneration {
		c.put(fmt.Sprint("t", i), &verified{})
		if i%(tokenGeneration/2) == 0 {
			if v, ok := c.get("hot"); !ok || v != hot {
				t.Fatalf("after %d other tokens the token in use was dropped", i)
			}
		}
		if n := len(c.cur) + len(c.prev); n > 2*tokenGeneration {
			t.Fatalf("%d tokens kept, want at most %d", n, 2*tokenGeneration)
		}
	}
	if _, ok := c.get("idle"); ok {
		t.Error("a token unused for five generations is still kept")
	}
}
