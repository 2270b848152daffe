package main

import (
	"bufio"
	"context"
	"encoding/json"
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
		return postTo(t, base+"/v1/log", pass, body)
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
	var tok strings.Builder
	if err := run(context.Background(), []string{"-mint-token", "laptop"}, func(string) string { return "" }, &tok); err != nil {
		t.Fatalf("-mint-token: %v", err)
	}
	scored := `{"type":"$login","status":"$succeeded","request_token":"` + strings.TrimSpace(tok.String()) +
		`","user":{"id":"u1"},"context":{"ip":"81.2.69.142","headers":{"User-Agent":"test"}}}`
	if code := postTo(t, base+"/v1/risk", secret, scored); code != http.StatusCreated {
		t.Errorf("risk with a minted token: status %d, want 201", code)
	}
	if code := postTo(t, base+"/v1/v1/log", secret, good); code != http.StatusNotFound {
		t.Errorf("/v1/v1/log: status %d, want 404", code)
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
	var got []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("dump line %q: %v", sc.Text(), err)
		}
		got = append(got, m)
	}
	if len(got) != 2 || string(got[0]["path"]) != `"/v1/log"` || string(got[0]["body"]) != good || got[0]["response"] != nil ||
		string(got[1]["path"]) != `"/v1/risk"` || string(got[1]["body"]) != scored || !strings.Contains(string(got[1]["response"]), `"policy"`) {
		t.Errorf("dump = %s, want the log body, then the risk body with its verdict", got)
	}
}

// postTo posts a JSON body to url with pass as the API secret ("" for
// none) and returns the status.
func postTo(t *testing.T, url, pass, body string) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
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

func TestSecretRequired(t *testing.T) {
	err := run(context.Background(), nil, func(string) string { return "" }, io.Discard)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "CASTLE_API_SECRET") {
		t.Fatalf("run without a secret: %v, want a usage error naming CASTLE_API_SECRET", err)
	}
}
