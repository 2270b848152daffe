package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// lines hands the output of run, line by line, to the test reading it.
type lines struct{ ch chan string }

func (l lines) Write(p []byte) (int, error) {
	for _, s := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.ch <- s
	}
	return len(p), nil
}

func TestServesChecksAndDumps(t *testing.T) {
	const secret = "s3cr3t-for-the-test"
	dump := filepath.Join(t.TempDir(), "accepted.ndjson")
	out := lines{make(chan string, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-dump", dump},
			func(k string) string {
				if k == "CASTLE_API_SECRET" {
					return secret
				}
				return ""
			}, out)
	}()

	var base string
	select {
	case l := <-out.ch:
		m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("first line %q does not name the address", l)
		}
		base = m[1]
	case err := <-done:
		t.Fatalf("run ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line")
	}

	post := func(pass, body string) int {
		t.Helper()
		req, err := http.NewRequest("POST", base+"/v1/log", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if pass != "" {
			req.SetBasicAuth("", pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	good := `{"type":"$custom","name":"Clicked","user":{"id":"u1"},"properties":{"seq":1}}`
	if code := post(secret, good); code/100 != 2 {
		t.Errorf("valid event: status %d, want 2xx", code)
	}
	if code := post("wrong", good); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: status %d, want 401", code)
	}
	if code := post(secret, `{"type":"$custom","user":{"id":"u1"}}`); code/100 != 4 {
		t.Errorf("$custom without name: status %d, want 4xx", code)
	}

	cancel()
	go func() {
		for range out.ch {
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if len(got) != 1 || got[0] != good {
		t.Errorf("dump = %q, want exactly the one accepted body", got)
	}
}

func TestSecretRequired(t *testing.T) {
	err := run(context.Background(), nil, func(string) string { return "" }, io.Discard)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "CASTLE_API_SECRET") {
		t.Fatalf("run without a secret: %v, want a usage error naming CASTLE_API_SECRET", err)
	}
}
