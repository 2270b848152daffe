package destination

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// h1 posts to one Castle origin over HTTP/1.1 keep-alive connections, and
// does each exchange on the caller's goroutine: it writes the request,
// then reads the answer, on a connection that the caller holds alone
// meanwhile.
//
// It is what the Client uses unless it is given an http.Client or a proxy
// is configured. net/http's Transport runs two goroutines per connection
// and hands every request and answer between them and the caller over
// channels; with a thousand requests in flight (Castle 30 ms away) that
// costs about as much CPU as the rest of the worker together, and each
// garbage collection scans those goroutines' stacks. Castle's API needs
// none of what the Transport adds for it: one origin, POSTs of a known
// length, small answers, no redirects (a redirect holds delivery), no
// compression.
//
// An idle connection is reused, the most recently used first; one idle for
// idleFor, or for a little less than the server's Keep-Alive timeout if it
// gave one, is closed. A request that fails on a reused
// connection before any byte of an answer came is sent once more on a new
// connection, as OkHttp does: the server most likely closed the idle
// connection as it was written to.
type h1 struct {
	addr    string      // host:port to dial
	tls     *tls.Config // nil for http://
	dial    dialFunc
	heads   [Filter + 1][]byte // request line and fixed headers, up to "Content-Length: "
	urls    [Filter + 1]string // for errors
	idleFor time.Duration
	// opened and resent, if not nil, count connections made and requests
	// sent again on a new connection.
	opened, resent interface{ Inc() }

	mu     sync.Mutex
	idle   []*h1Conn // the most recently used last
	closed bool
	// janitor closes idle connections whose time is up while nothing is
	// sent; armed while there are idle connections.
	janitor *time.Timer
}

// dialFunc makes a connection, as net.Dialer.DialContext.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// h1Conn is a connection and its buffers.
type h1Conn struct {
	net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	expires time.Time // when idle, when it is no longer used
	// keepFor is how long it may stay idle: idleFor, or less than the
	// server's Keep-Alive timeout.
	keepFor time.Duration
	reused  bool
	// abort fails the pending read or write at once: a deadline in the
	// past. Made once, so that each exchange does not allocate it.
	abort func()
}

// h1Answer is what came back.
type h1Answer struct {
	code int
	// Headers the client reads (classify.go's hints), as sent.
	retryAfter, rlReset, rlRemaining string
	body                             []byte // up to maxBody, when wanted
}

const (
	// h1MaxHeader bounds an answer's status line and headers.
	h1MaxHeader = 64 << 10
	// h1Drain is how much of an unwanted body is read to keep the
	// connection; a longer one closes it.
	h1Drain = 4 << 10
	// h1IdleFor is how long an idle connection is kept (net/http's
	// default).
	h1IdleFor = 90 * time.Second
	// h1KeepAliveMargin is how much sooner than a server's Keep-Alive
	// timeout an idle connection is given up (half the timeout, if less).
	h1KeepAliveMargin = time.Second
)

// newH1 returns an h1 for base (http or https), sending header with every
// request; tlsConf, if not nil, is cloned for https. dial may be nil (a
// net.Dialer).
func newH1(base string, header http.Header, tlsConf *tls.Config, dial dialFunc) (*h1, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return nil, err
	}
	t := &h1{dial: dial, idleFor: h1IdleFor}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t.tls = tlsConf.Clone()
		if t.tls.ServerName == "" {
			t.tls.ServerName = u.Hostname()
		}
		t.tls.NextProtos = []string{"http/1.1"}
		if t.tls.ClientSessionCache == nil {
			t.tls.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
	default:
		return nil, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Host == "" {
		return nil, errors.New("want a URL with a host and no credentials, query or fragment")
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if t.dial == nil {
		t.dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	var fixed bytes.Buffer
	fixed.WriteString("Host: " + u.Host + "\r\n")
	for _, k := range slices.Sorted(maps.Keys(header)) {
		for _, v := range header[k] {
			if !validHeader(k, false) || !validHeader(v, true) {
				return nil, fmt.Errorf("header %q: not a valid HTTP header", k)
			}
			fixed.WriteString(k + ": " + v + "\r\n")
		}
	}
	fixed.WriteString("Content-Length: ")
	for ep := range t.heads {
		path := Endpoint(ep).Path()
		eu, err := url.Parse(u.String() + path)
		if err != nil {
			return nil, err
		}
		t.urls[ep] = eu.String()
		t.heads[ep] = append([]byte("POST "+eu.RequestURI()+" HTTP/1.1\r\n"), fixed.Bytes()...)
	}
	return t, nil
}

// validHeader reports whether s may be a header's name (value false) or
// value: no control characters, and no separators in a name.
func validHeader(s string, value bool) bool {
	if s == "" && !value {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\t' && value:
		case c < 0x20 || c == 0x7f:
			return false
		case !value && (c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`()<>@,;:\"/[]?={}`), c) >= 0):
			return false
		}
	}
	return true
}

// errH1Closed is returned after closeIdle.
var errH1Closed = errors.New("castle client closed")

// post sends body to ep and reads the answer within timeout, or until ctx
// ends. The answer's body is kept, up to maxBody bytes, when it is not a
// 2xx or keepBody is set. An error with a nonzero answer code means the
// answer's body could not be read.
func (t *h1) post(ctx context.Context, ep Endpoint, body []byte, timeout time.Duration, maxBody int, keepBody bool) (h1Answer, error) {
	deadline := time.Now().Add(timeout)
	fresh := false
	for {
		c, err := t.get(ctx, deadline, fresh)
		if err != nil {
			return h1Answer{}, err
		}
		a, started, reusable, err := t.exchange(ctx, c, deadline, ep, body, maxBody, keepBody)
		if err == nil && reusable {
			t.put(c)
		} else {
			_ = c.Close()
		}
		if err != nil && c.reused && !started && ctx.Err() == nil && time.Now().Before(deadline) && staleConn(err) {
			fresh = true // once
			if t.resent != nil {
				t.resent.Inc()
			}
			continue
		}
		return a, err
	}
}

// staleConn reports whether err is what writing to, or reading from, a
// connection the server has closed gives.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// get returns an idle connection, or, when there is none or fresh is set,
// a new one.
func (t *h1) get(ctx context.Context, deadline time.Time, fresh bool) (*h1Conn, error) {
	var c *h1Conn
	var expired []*h1Conn
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errH1Closed
	}
	// The janitor (sweep) closes expired connections, but may not have
	// run yet.
	for k := len(t.idle); k > 0 && !fresh && c == nil; k-- {
		c = t.idle[k-1]
		t.idle[k-1] = nil
		t.idle = t.idle[:k-1]
		if !now.Before(c.expires) {
			expired = append(expired, c)
			c = nil
		}
	}
	t.mu.Unlock()
	for _, x := range expired {
		_ = x.Close()
	}
	if c != nil {
		c.reused = true
		return c, nil
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, err := t.dial(dctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if t.tls != nil {
		tc := tls.Client(raw, t.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		conn = tc
	}
	if t.opened != nil {
		t.opened.Inc()
	}
	nc := &h1Conn{Conn: conn, br: bufio.NewReaderSize(conn, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10), keepFor: t.idleFor}
	nc.abort = func() { _ = conn.SetDeadline(time.Unix(1, 0)) }
	return nc, nil
}

// put keeps c for reuse.
func (t *h1) put(c *h1Conn) {
	c.expires = time.Now().Add(c.keepFor)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = c.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.janitor == nil {
		t.janitor = time.AfterFunc(c.keepFor, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes the idle connections whose time is up, and comes back when
// the next one's is, while any are left: a client that has nothing to send
// does not keep up to a thousand connections open to Castle.
func (t *h1) sweep() {
	now := time.Now()
	var expired []*h1Conn
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	kept := t.idle[:0]
	next := time.Time{}
	for _, c := range t.idle {
		switch {
		case !now.Before(c.expires):
			expired = append(expired, c)
		default:
			kept = append(kept, c)
			if next.IsZero() || c.expires.Before(next) {
				next = c.expires
			}
		}
	}
	clear(t.idle[len(kept):])
	t.idle = kept
	if len(kept) > 0 {
		t.janitor.Reset(next.Sub(now))
	} else {
		t.janitor = nil
	}
	t.mu.Unlock()
	for _, c := range expired {
		_ = c.Close()
	}
}

// closeIdle closes the idle connections; connections given back later are
// closed, and later posts fail.
func (t *h1) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	if t.janitor != nil {
		t.janitor.Stop()
	}
	t.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}

// exchange writes the request on c and reads the answer. started says
// whether any of the answer came; reusable whether c may carry another
// request.
func (t *h1) exchange(ctx context.Context, c *h1Conn, deadline time.Time, ep Endpoint, body []byte, maxBody int, keepBody bool) (a h1Answer, started, reusable bool, err error) {
	if err := c.SetDeadline(deadline); err != nil {
		return a, false, false, err
	}
	// The caller's context ending aborts the exchange.
	stop := context.AfterFunc(ctx, c.abort)
	defer func() {
		if !stop() {
			// The deadline may have been moved: the connection
			// is not reused.
			reusable = false
			if err != nil {
				err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
			}
		}
	}()

	_, _ = c.bw.Write(t.heads[ep])
	_, _ = c.bw.Write(strconv.AppendInt(c.bw.AvailableBuffer(), int64(len(body)), 10))
	_, _ = c.bw.WriteString("\r\n\r\n")
	_, _ = c.bw.Write(body)
	if err := c.bw.Flush(); err != nil {
		return a, false, false, err
	}
	a, started, reusable, keepFor, err := readAnswer(c.br, maxBody, keepBody)
	if keepFor > 0 {
		c.keepFor = min(t.idleFor, keepFor-min(h1KeepAliveMargin, keepFor/2))
	}
	// Bytes beyond the answer: the server and this client disagree on
	// where it ended, and the next answer would be misread.
	return a, started, reusable && c.br.Buffered() == 0, err
}

// readAnswer reads one answer to a POST from br (RFC 9112): interim 1xx
// answers are skipped; the body's length is Transfer-Encoding chunked,
// Content-Length, or what comes until the connection closes. The body is
// kept, up to maxBody bytes, unless the answer is a 2xx and keepBody is
// not set; up to h1Drain more is read to keep the connection.
//
// keepFor is the server's Keep-Alive timeout, 0 if it gave none.
func readAnswer(br *bufio.Reader, maxBody int, keepBody bool) (a h1Answer, started, reusable bool, keepFor time.Duration, err error) {
	var h h1Head
	for {
		if h, err = readHead(br); err != nil {
			return a, started || h.started, false, 0, err
		}
		started = true
		if h.code >= 200 {
			break
		}
		if h.code == http.StatusSwitchingProtocols {
			return a, true, false, 0, errors.New("malformed HTTP response: 101 Switching Protocols to a POST")
		}
	}
	keepFor = h.keepAlive
	a.code, a.retryAfter, a.rlReset, a.rlRemaining = h.code, h.retryAfter, h.rlReset, h.rlRemaining
	want := keepBody || h.code < 200 || h.code >= 300
	var done bool
	switch {
	case h.code == http.StatusNoContent || h.code == http.StatusNotModified:
		done = true
	case h.chunked:
		a.body, done, err = readBody(httputil.NewChunkedReader(br), want, maxBody)
		if err == nil && done {
			err = skipTrailers(br)
		}
	case h.length >= 0:
		n := int64(0)
		if want {
			n = min(h.length, int64(maxBody))
			a.body = make([]byte, n)
			if _, err = io.ReadFull(br, a.body); err != nil {
				return a, true, false, keepFor, err
			}
		}
		if rest := h.length - n; rest <= h1Drain {
			_, err = br.Discard(int(rest))
			done = true
		}
	default: // until the connection closes
		a.body, _, err = readBody(br, want, maxBody)
		h.close = true
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return a, true, done && !h.close && err == nil, keepFor, err
}

// readBody reads r: up to maxBody bytes kept when want, then up to
// h1Drain more discarded. done says whether r was read to its end.
func readBody(r io.Reader, want bool, maxBody int) (body []byte, done bool, err error) {
	if want {
		if body, err = io.ReadAll(io.LimitReader(r, int64(maxBody))); err != nil {
			return body, false, err
		}
	}
	m, err := io.Copy(io.Discard, io.LimitReader(r, h1Drain+1))
	return body, err == nil && m <= h1Drain, err
}

// skipTrailers reads a chunked body's trailer section, up to its blank
// line.
func skipTrailers(br *bufio.Reader) error {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return malformed(err)
		}
		if total += len(line); total > h1MaxHeader {
			return errors.New("malformed HTTP response: trailers too long")
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}

// h1Head is an answer's status and the headers that matter here.
type h1Head struct {
	code                             int
	retryAfter, rlReset, rlRemaining string
	length                           int64 // -1: none given
	chunked, close                   bool
	started                          bool          // bytes of it were read
	keepAlive                        time.Duration // Keep-Alive: timeout=N, 0 if none
}

// readHead reads a status line and headers.
func readHead(br *bufio.Reader) (h h1Head, err error) {
	h.length = -1
	line, err := br.ReadSlice('\n')
	h.started = len(line) > 0
	if err != nil {
		return h, malformed(err)
	}
	total := len(line)
	line = bytes.TrimRight(line, "\r\n")
	// HTTP/1.x NNN[ reason]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return h, fmt.Errorf("malformed HTTP response %q", truncate(line))
	}
	minor := line[7]
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return h, fmt.Errorf("malformed HTTP status code %q", line[9:12])
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return h, fmt.Errorf("malformed HTTP status code %q", line[9:12])
	}
	h.code = code
	keepAlive := minor != '0'
	var lengths int
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return h, malformed(err)
		}
		if total += len(line); total > h1MaxHeader {
			return h, errors.New("malformed HTTP response: headers too long")
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return h, fmt.Errorf("malformed HTTP response header %q", truncate(line))
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || (lengths > 0 && n != h.length) {
				return h, fmt.Errorf("malformed HTTP response: Content-Length %q", truncate(value))
			}
			h.length = n
			lengths++
		case equalFold(name, "Transfer-Encoding"):
			// The last coding decides: chunked, or the body runs until
			// the connection closes.
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = bytes.Trim(value[i+1:], " \t")
			}
			h.chunked = equalFold(last, "chunked")
			if !h.chunked {
				h.close = true
			}
		case equalFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				if equalFold(tok, "close") {
					h.close = true
				} else if equalFold(tok, "keep-alive") {
					keepAlive = true
				}
			}
		case equalFold(name, "Keep-Alive"):
			h.keepAlive = keepAliveTimeout(value)
		case equalFold(name, hdrRetryAfter):
			h.retryAfter = string(value)
		case equalFold(name, hdrRateLimitReset):
			h.rlReset = string(value)
		case equalFold(name, hdrRateLimitRemaining):
			h.rlRemaining = string(value)
		}
	}
	if h.chunked {
		h.length = -1 // Transfer-Encoding wins over Content-Length
	}
	if !keepAlive {
		h.close = true
	}
	return h, nil
}

// parseLength reads a Content-Length: digits only (RFC 9110 8.6), at most
// 18 of them, so no sign and no overflow.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// keepAliveTimeout reads the timeout parameter of a Keep-Alive header
// ("timeout=5, max=1000"), 0 when there is none that parses.
func keepAliveTimeout(v []byte) time.Duration {
	for p := range bytes.SplitSeq(v, []byte(",")) {
		k, val, ok := bytes.Cut(bytes.Trim(p, " \t"), []byte("="))
		if !ok || !equalFold(bytes.TrimRight(k, " \t"), "timeout") {
			continue
		}
		if n, err := strconv.Atoi(string(bytes.Trim(val, " \t"))); err == nil && n > 0 {
			return min(time.Duration(n)*time.Second, h1IdleFor)
		}
	}
	return 0
}

// malformed describes a read error in an answer's head: io.EOF and
// ErrBufferFull say too little on their own.
func malformed(err error) error {
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return errors.New("malformed HTTP response: a header line is too long")
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

// equalFold is ASCII case-insensitive equality of b and s.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
