package destination

import (
	"net/http"
	"testing"
)

// Header.Get finds any spelling, but only a canonical one spares it a
// rewrite and an allocation on every answer.
func TestResponseHeaderNamesAreCanonical(t *testing.T) {
	for _, h := range []string{hdrRetryAfter, hdrRateLimitReset, hdrRateLimitRemaining} {
		if c := http.CanonicalHeaderKey(h); c != h {
			t.Errorf("%q is spelled %q in net/http's header maps", h, c)
		}
	}
}
