package castleserver

import (
	"context"
	"errors"
	"net"
	"sync"
)

// MemListener is an in-memory net.Listener: DialContext hands the server
// one end of a net.Pipe. It lets a real http.Server and a real
// http.Transport talk inside a testing/synctest bubble, where time is fake
// and loopback sockets cannot be used. Plug it in with
// http.Server.Serve(l) and http.Transport{DialContext: l.DialContext}.
type MemListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// NewMemListener returns an open MemListener.
func NewMemListener() *MemListener {
	return &MemListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for the next dialed connection.
func (l *MemListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and DialContext. Connections already made stay open.
func (l *MemListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr returns a placeholder address.
func (l *MemListener) Addr() net.Addr { return memAddr{} }

// DialContext connects to the listener; network and address are ignored.
func (l *MemListener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		_, _ = client.Close(), server.Close()
		return nil, errors.New("memlistener: connection refused: listener closed")
	case <-ctx.Done():
		_, _ = client.Close(), server.Close()
		return nil, ctx.Err()
	}
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }
