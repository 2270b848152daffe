package destination

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// NewOverDial is New with the Client's own transport making its
// connections with dial: an in-memory listener's, in a synctest bubble.
func NewOverDial(cfg Config, logger *zap.Logger, reg prometheus.Registerer, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*Client, error) {
	return newClient(cfg, logger, reg, nil, dial)
}

// PacedUsers reports how many users the client keeps pacing state for:
// in lanes, and resting.
func (c *Client) PacedUsers() (lanes, resting int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lanes), c.resting.len()
}

// H1Post returns a function that posts body to base's /v1/log over the
// Client's own HTTP/1.1 connections (h1), trusting roots for https (nil:
// the system's), and one that closes them.
func H1Post(base string, roots *x509.CertPool) (post func(body []byte) (code int, err error), closeIdle func(), err error) {
	h, err := newH1(base, http.Header{"Content-Type": {"application/json"}}, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil)
	if err != nil {
		return nil, nil, err
	}
	post = func(body []byte) (int, error) {
		a, err := h.post(context.Background(), Log, body, DefaultTimeout, DefaultMaxErrorBody, false)
		return a.code, err
	}
	return post, h.closeIdle, nil
}
