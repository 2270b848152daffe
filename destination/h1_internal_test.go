package destination

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/selfcert"
	"github.com/castle-destination/castle-destination/internal/tlserr"
)

var testHeader = http.Header{
	"Authorization": {"Basic OnNlY3JldA=="},
	"Content-Type":  {"application/json"},
	"Accept":        {"application/json"},
	"User-Agent":    {"castle-destination/test"},
}

// rawServer answers each request it reads with what answer returns,
// written as is: a server that can say what net/http's would not.
type rawServer struct {
	ln      net.Listener
	accepts atomic.Int32
	mu      sync.Mutex
	bodies  []string
	// answer returns the bytes to write for the n-th request (from 0,
	// over all connections), and whether to close the connection after.
	answer func(n int) (string, bool)
	n      int
}

func newRawServer(t *testing.T, answer func(n int) (string, bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, answer: answer}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *rawServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		n := s.n
		s.n++
		s.mu.Unlock()
		resp, closeAfter := s.answer(n)
		if _, err := io.WriteString(c, resp); err != nil || closeAfter {
			return
		}
	}
}

// requests is how many requests the server has read.
func (s *rawServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

func newTestH1(t *testing.T, base string, tlsConf *tls.Config) *h1 {
	t.Helper()
	h, err := newH1(base, testHeader, tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.closeIdle)
	return h
}

// The request is what Castle's API expects, and one connection carries
// request after request.
func TestH1Request(t *testing.T) {
	var (
		mu    sync.Mutex
		seen  []*http.Request
		conns atomic.Int32
	)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		if string(b) != `{"n":1}` {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	h := newTestH1(t, ts.URL+"/", nil)
	for range 3 {
		a, err := h.post(context.Background(), Log, []byte(`{"n":1}`), time.Second, 1<<10, false)
		if err != nil || a.code != http.StatusNoContent {
			t.Fatalf("post: %d %v", a.code, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1", n)
	}
	r := seen[0]
	u, _ := url.Parse(ts.URL)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/log" || r.Host != u.Host || r.ContentLength != 7 || r.ProtoMajor != 1 {
		t.Errorf("request %s %s host %q length %d proto %s", r.Method, r.URL, r.Host, r.ContentLength, r.Proto)
	}
	for k, v := range testHeader {
		if got := r.Header.Get(k); got != v[0] {
			t.Errorf("header %s = %q, want %q", k, got, v[0])
		}
	}
	if h.urls[Risk] != ts.URL+"/v1/risk" {
		t.Errorf("urls[Risk] = %q", h.urls[Risk])
	}
}

// Answers are framed as RFC 9112 says, the headers the client reads are
// found whatever their case, and a connection is reused only when its
// answer was read to its end and the server keeps it open.
func TestH1Answers(t *testing.T) {
	long := strings.Repeat("x", 64+h1Drain+10)
	for _, tt := range []struct {
		name     string
		answer   string
		closes   bool // the server closes after answering
		keepBody bool
		code     int
		body     string
		reused   bool
		hints    [3]string
	}{
		{name: "no content", answer: "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n", code: 204, reused: true},
		{name: "status without reason", answer: "HTTP/1.1 204\r\n\r\n", code: 204, reused: true},
		{name: "length, body not wanted", answer: "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", code: 201, reused: true},
		{name: "length, verdict wanted", answer: "HTTP/1.1 201 Created\r\ncontent-length: 17\r\n\r\n{\"policy\":\"deny\"}", keepBody: true,
			code: 201, body: `{"policy":"deny"}`, reused: true},
		{name: "error body kept", answer: "HTTP/1.1 422 Unprocessable\r\nContent-Length: 26\r\n\r\n{\"type\":\"invalid_request\"}",
			code: 422, body: `{"type":"invalid_request"}`, reused: true},
		{name: "chunked with trailers", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\nT: v\r\n\r\n",
			keepBody: true, code: 200, body: `{"a":1}`, reused: true},
		{name: "chunked beats length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
			keepBody: true, code: 200, body: `{}`, reused: true},
		{name: "connection close", answer: "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", closes: true, code: 204},
		{name: "1.0 closes by default", answer: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", closes: true, code: 200},
		{name: "1.0 keep-alive", answer: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", code: 200, reused: true},
		{name: "body until close", answer: "HTTP/1.1 500 Oops\r\n\r\nbroken", closes: true, code: 500, body: "broken"},
		{name: "interim answers skipped", answer: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
			code: 204, reused: true},
		{name: "hints", answer: "HTTP/1.1 429 Too Many\r\nretry-after: 7\r\nX-RateLimit-Reset:  3 \r\nx-ratelimit-remaining: 0\r\nContent-Length: 0\r\n\r\n",
			code: 429, body: "", reused: true, hints: [3]string{"7", "3", "0"}},
		{name: "body over the bound", answer: "HTTP/1.1 200 OK\r\nContent-Length: " + itoa(len(long)) + "\r\n\r\n" + long, keepBody: true,
			code: 200, body: long[:64]},
		{name: "long body not wanted", answer: "HTTP/1.1 200 OK\r\nContent-Length: " + itoa(len(long)) + "\r\n\r\n" + long, code: 200},
		{name: "long chunked body", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + hexLen(len(long)) + "\r\n" + long + "\r\n0\r\n\r\n",
			keepBody: true, code: 200, body: long[:64]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, func(int) (string, bool) { return tt.answer, tt.closes })
			h := newTestH1(t, s.url(), nil)
			for i := range 2 {
				a, err := h.post(context.Background(), Risk, []byte(`{}`), 5*time.Second, 64, tt.keepBody)
				if err != nil {
					t.Fatalf("post %d: %v", i, err)
				}
				if a.code != tt.code || string(a.body) != tt.body {
					t.Errorf("post %d: %d %q, want %d %q", i, a.code, a.body, tt.code, tt.body)
				}
				if got := [3]string{a.retryAfter, a.rlReset, a.rlRemaining}; got != tt.hints {
					t.Errorf("hints %q, want %q", got, tt.hints)
				}
				if kept := idleConns(h) == 1; kept != tt.reused {
					t.Errorf("post %d: connection kept %v, want %v", i, kept, tt.reused)
				}
			}
			want := int32(2)
			if tt.reused {
				want = 1
			}
			if n := s.accepts.Load(); n != want {
				t.Errorf("%d connections for 2 requests, want %d", n, want)
			}
		})
	}
}

func itoa(n int) string   { return strconv.Itoa(n) }
func hexLen(n int) string { return strconv.FormatInt(int64(n), 16) }

// Answers that cannot be read fail the attempt, which the client retries
// as a connection error, and their connections are not reused.
func TestH1Malformed(t *testing.T) {
	for _, tt := range []struct{ name, answer, want string }{
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", "malformed HTTP response"},
		{"bad code", "HTTP/1.1 2x4 No\r\n\r\n", "malformed HTTP status code"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", "Content-Length"},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n", "Content-Length"},
		{"folded header", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "malformed HTTP response header"},
		{"header line too long", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", "too long"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"},
		{"truncated body", "HTTP/1.1 400 Bad\r\nContent-Length: 10\r\n\r\nabc", "unexpected EOF"},
		{"truncated head", "HTTP/1.1 200 OK\r\nContent-Le", "unexpected EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, func(int) (string, bool) { return tt.answer, true })
			h := newTestH1(t, s.url(), nil)
			_, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one with %q", err, tt.want)
			}
			if idleConns(h) != 0 {
				t.Error("a connection was kept")
			}
		})
	}
}

// A kept connection the server closed meanwhile is replaced at once: the
// request goes again on a new connection. A new connection that fails is
// not tried again here (the client retries after its backoff).
func TestH1StaleConnection(t *testing.T) {
	// The server answers a connection's first request and closes it.
	s := newRawServer(t, func(int) (string, bool) { return "HTTP/1.1 204 No Content\r\n\r\n", true })
	h := newTestH1(t, s.url(), nil)
	var opened, resent count
	h.opened, h.resent = &opened, &resent
	for i := range 3 {
		// From the second on, the kept connection is one the server has
		// closed, or closes without reading what is written to it.
		a, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false)
		if err != nil || a.code != 204 {
			t.Fatalf("post %d: %d %v", i, a.code, err)
		}
	}
	if got := s.requests(); got != 3 {
		t.Errorf("the server read %d requests, want 3", got)
	}
	if o, r := opened.Load(), resent.Load(); o != 3 || r != 2 {
		t.Errorf("connections opened %v, resends %v; want 3 and 2", o, r)
	}

	// A server that never answers: the new connection's failure is the
	// attempt's.
	s = newRawServer(t, func(int) (string, bool) { return "", true })
	h = newTestH1(t, s.url(), nil)
	if _, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want unexpected EOF", err)
	}
	if n := s.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// count is a counter for h1's hooks.
type count struct{ atomic.Int64 }

func (c *count) Inc() { c.Add(1) }

// idleConns is how many connections h keeps idle.
func idleConns(h *h1) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

// An attempt ends at its timeout, or when the caller's context ends, and
// says which.
func TestH1TimeoutAndCancel(t *testing.T) {
	stop, second := make(chan struct{}), make(chan struct{})
	s := newRawServer(t, func(n int) (string, bool) {
		if n == 1 {
			close(second)
		}
		<-stop
		return "", true
	})
	t.Cleanup(func() { close(stop) }) // before the server's cleanup
	h := newTestH1(t, s.url(), nil)
	_, err := h.post(context.Background(), Log, []byte(`{}`), 50*time.Millisecond, 64, false)
	if !isTimeout(err) {
		t.Errorf("err = %v, want a timeout", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-second // the server has the request
		cancel()
	}()
	_, err = h.post(ctx, Log, []byte(`{}`), time.Minute, 64, false)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if idleConns(h) != 0 {
		t.Error("a connection was kept")
	}

	// The sender reports it as the client expects.
	snd, err := newSender(Config{URL: s.url(), Secret: "secret", Timeout: 50 * time.Millisecond, MaxErrorBody: 64}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.h1.closeIdle()
	r := snd.send(context.Background(), Log, []byte(`{}`), false)
	if !r.timedOut || r.canceled || r.code != 0 || !strings.HasPrefix(r.err.Error(), `Post "`+s.url()+`/v1/log": `) {
		t.Errorf("timed out: %+v", r)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if r := snd.send(ctx, Log, []byte(`{}`), false); !r.canceled {
		t.Errorf("canceled: %+v", r)
	}
}

// Over TLS the client offers only HTTP/1.1, checks the server's
// certificate, and a failed check is a TLS error (which holds delivery).
func TestH1TLS(t *testing.T) {
	ca, err := selfcert.NewCA("h1 test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Server("h1 test server")
	if err != nil {
		t.Fatal(err)
	}
	var proto atomic.Value
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		w.WriteHeader(http.StatusNoContent)
	}))
	ts.EnableHTTP2 = true
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	ts.StartTLS()
	defer ts.Close()

	h := newTestH1(t, ts.URL, ca.ClientTLS())
	a, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false)
	if err != nil || a.code != http.StatusNoContent {
		t.Fatalf("post: %d %v", a.code, err)
	}
	if p := proto.Load(); p != "HTTP/1.1" {
		t.Errorf("proto %v, want HTTP/1.1", p)
	}

	h = newTestH1(t, ts.URL, &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12})
	_, err = h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false)
	if !tlserr.Is(err) {
		t.Errorf("err = %v, want a TLS error", err)
	}
}

// Connections idle too long are closed, not used; after closeIdle nothing
// is sent.
func TestH1IdleAndClose(t *testing.T) {
	s := newRawServer(t, func(int) (string, bool) { return "HTTP/1.1 204 No Content\r\n\r\n", false })
	h := newTestH1(t, s.url(), nil)
	post := func() {
		t.Helper()
		if _, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false); err != nil {
			t.Fatal(err)
		}
	}
	h.idleFor = 0
	for range 3 {
		post()
	}
	if n := s.accepts.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (each idle one expired)", n)
	}
	h.idleFor = h1IdleFor
	post()
	if n := idleConns(h); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	h.closeIdle()
	if n := idleConns(h); n != 0 {
		t.Errorf("%d idle connections after closeIdle", n)
	}
	if _, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false); !errors.Is(err, errH1Closed) {
		t.Errorf("after closeIdle: %v", err)
	}
}

// What cannot be put in a request line or header is refused up front.
func TestH1RefusesBadSettings(t *testing.T) {
	for _, tt := range []struct {
		name   string
		base   string
		header http.Header
	}{
		{"header injection", "http://castle.test", http.Header{"User-Agent": {"x\r\nX-Evil: 1"}}},
		{"bad name", "http://castle.test", http.Header{"Bad Name": {"x"}}},
		{"scheme", "ftp://castle.test", nil},
		{"credentials", "http://u:p@castle.test", nil},
		{"query", "http://castle.test?x=1", nil},
	} {
		if _, err := newH1(tt.base, tt.header, nil, nil); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// A proxy in the environment sends the client to net/http's Transport.
func TestViaProxy(t *testing.T) {
	proxy := func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "api.castle.io" {
			return url.Parse("http://proxy:3128")
		}
		return nil, nil
	}
	if !viaProxyFunc("https://api.castle.io", proxy) || viaProxyFunc("http://127.0.0.1:1", proxy) {
		t.Error("viaProxy does not follow the proxy function")
	}
}

// A server's Keep-Alive timeout shortens how long its connections are kept
// idle, and an answer followed by bytes it did not announce closes its
// connection.
func TestH1KeepAliveAndExtraBytes(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", h1IdleFor},
		{"Keep-Alive: timeout=5, max=1000\r\n", 4 * time.Second},
		{"keep-alive: max=10,timeout = 1\r\n", 500 * time.Millisecond},
		{"Keep-Alive: timeout=600\r\n", h1IdleFor - time.Second},
		{"Keep-Alive: timeout=x\r\n", h1IdleFor},
	} {
		s := newRawServer(t, func(int) (string, bool) {
			return "HTTP/1.1 204 No Content\r\n" + tt.header + "\r\n", false
		})
		h := newTestH1(t, s.url(), nil)
		before := time.Now()
		if _, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false); err != nil {
			t.Fatal(err)
		}
		if len(h.idle) != 1 {
			t.Fatalf("%q: %d idle connections, want 1", tt.header, len(h.idle))
		}
		if c := h.idle[0]; c.keepFor != tt.want || c.expires.Before(before.Add(tt.want)) || c.expires.After(time.Now().Add(tt.want)) {
			t.Errorf("%q: kept for %v until %v, want %v", tt.header, c.keepFor, c.expires.Sub(before), tt.want)
		}
	}

	s := newRawServer(t, func(int) (string, bool) { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk", false })
	h := newTestH1(t, s.url(), nil)
	a, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false)
	if err != nil || a.code != 200 {
		t.Fatalf("post: %d %v", a.code, err)
	}
	if idleConns(h) != 0 {
		t.Error("a connection with bytes past its answer was kept")
	}
}

// A post on a kept connection allocates only what cancelling it on the
// caller's context takes (context.AfterFunc), whatever the answer's
// headers: no request, header map or answer is built. The server here
// allocates nothing per request, so that the count is the client's.
func TestH1PostAllocations(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	body := []byte(`{"type":"$custom"}`)
	answer := []byte("HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-RateLimit-Limit: 10\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n\r\n{}")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			// A whole request is its head and len(body) bytes.
			if end := bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 && n >= end+4+len(body) {
				n = copy(buf, buf[end+4+len(body):n])
				if _, err := c.Write(answer); err != nil {
					return
				}
			}
		}
	}()
	h := newTestH1(t, "http://"+ln.Addr().String(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	post := func() {
		if a, err := h.post(ctx, Log, body, 5*time.Second, 64, false); err != nil || a.code != 201 {
			t.Fatalf("post: %d %v", a.code, err)
		}
	}
	post() // dials
	if n := testing.AllocsPerRun(200, post); n > 2 {
		t.Errorf("a post allocates %v times, want at most 2", n)
	}
}

// With nothing to send, idle connections are closed when their time is up
// (on a fake clock), not kept until the next request.
func TestH1IdleConnectionsClosedWhileQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := castleserver.NewMemListener()
		var closed atomic.Int32
		// Each request waits for the other: two connections, whatever
		// the scheduling.
		arrived, both := make(chan struct{}, 2), make(chan struct{})
		hs := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-both
				w.WriteHeader(http.StatusNoContent)
			}),
			ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed.Add(1)
				}
			},
		}
		go func() { _ = hs.Serve(l) }()
		defer hs.Close()
		h, err := newH1("http://castle.test", testHeader, nil, l.DialContext)
		if err != nil {
			t.Fatal(err)
		}
		defer h.closeIdle()
		// Two connections at once, then both idle.
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, err := h.post(context.Background(), Log, []byte(`{}`), 5*time.Second, 64, false); err != nil {
					t.Error(err)
				}
			})
		}
		<-arrived
		<-arrived
		close(both)
		wg.Wait()
		if n := idleConns(h); n != 2 {
			t.Fatalf("%d idle connections, want 2", n)
		}
		time.Sleep(h1IdleFor - time.Second)
		synctest.Wait()
		if n, c := idleConns(h), closed.Load(); n != 2 || c != 0 {
			t.Fatalf("before their time: %d idle, %d closed; want 2 and 0", n, c)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n, c := idleConns(h), closed.Load(); n != 0 || c != 2 {
			t.Fatalf("after their time: %d idle, %d closed; want 0 and 2", n, c)
		}
		h.mu.Lock()
		armed := h.janitor != nil
		h.mu.Unlock()
		if armed {
			t.Error("the janitor is still armed with nothing idle")
		}
	})
}
