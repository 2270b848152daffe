package verdict_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/verdict"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want verdict.Response
		err  error
	}{
		{
			name: "Castle's documented response",
			body: `{"id":"ASZoelALT5-PaVw2pAVMXg","type":"$login","status":"$succeeded","risk":0.65,
				"scores":{"account_abuse":{"score":0.67},"account_takeover":{"score":0.77},"bot":{"score":0.34}},
				"policy":{"name":"Challenge risk >= 60","id":"2ee9","revision_id":"900b","action":"challenge"},
				"signals":{"bot_behavior":{},"proxy_ip":{},"disposable_email":{},"spoofed_device":{},"multiple_accounts_per_device":{}},
				"metrics":{"1":{}},"device":{"token":"eyJhbGci","fingerprint":"ohvjn8adSnetYTzZ8B7bOP","hardware":{"type":"computer"}}}`,
			want: verdict.Response{
				ID: "ASZoelALT5-PaVw2pAVMXg", Risk: f64(0.65),
				Scores:  map[string]float64{"account_abuse": 0.67, "account_takeover": 0.77, "bot": 0.34},
				Policy:  &verdict.Policy{Action: "challenge", Name: "Challenge risk >= 60", ID: "2ee9", RevisionID: "900b"},
				Signals: []string{"bot_behavior", "disposable_email", "multiple_accounts_per_device", "proxy_ip", "spoofed_device"},
				Device:  verdict.Device{Fingerprint: "ohvjn8adSnetYTzZ8B7bOP"},
			},
		},
		{
			name: "signals as an array, risk 0, plain-number scores",
			body: `{"policy":{"action":"deny"},"signals":["fraudulent_email_domain","","fraudulent_email_domain",7],"risk":0,"scores":{"bot":0.5,"x":{"score":0}}}`,
			want: verdict.Response{Policy: &verdict.Policy{Action: "deny"}, Signals: []string{"fraudulent_email_domain"},
				Risk: f64(0), Scores: map[string]float64{"bot": 0.5, "x": 0}},
		},
		{
			name: "fields of the wrong shape are left out",
			body: `{"id":5,"policy":{"action":"allow"},"risk":"0.3","scores":{"bot":"high","ato":{"score":null},"y":null,"z":1e999},"signals":"bot_behavior","device":[1]}`,
			want: verdict.Response{Policy: &verdict.Policy{Action: "allow"}},
		},
		{
			name: "a policy member of the wrong shape is left out, not the action",
			body: `{"policy":{"action":"deny","name":"Block risk >= 90","id":42,"revision_id":{"v":1}}}`,
			want: verdict.Response{Policy: &verdict.Policy{Action: "deny", Name: "Block risk >= 90"}},
		},
		{
			name: "an action of the wrong shape is no action",
			body: `{"policy":{"action":["deny"],"name":"n"}}`,
			want: verdict.Response{Policy: &verdict.Policy{Name: "n"}},
			err:  verdict.ErrNoPolicy,
		},
		{
			name: "scores not an object",
			body: `{"policy":{"action":"allow"},"scores":[1,2],"risk":null}`,
			want: verdict.Response{Policy: &verdict.Policy{Action: "allow"}},
		},
		{
			name: "no policy: the rest is read",
			body: `{"action":"deny","risk":0.93,"signals":{"proxy_ip":{}}}`,
			want: verdict.Response{Risk: f64(0.93), Signals: []string{"proxy_ip"}},
			err:  verdict.ErrNoPolicy,
		},
		{name: "policy not an object", body: `{"policy":"deny"}`, err: verdict.ErrNoPolicy},
		{name: "policy null", body: `{"policy":null}`, err: verdict.ErrNoPolicy},
		{
			name: "undocumented action",
			body: `{"policy":{"action":"review","name":"n"}}`,
			want: verdict.Response{Policy: &verdict.Policy{Action: "review", Name: "n"}},
			err:  verdict.ErrNoPolicy,
		},
		{name: "empty object", body: `{}`, err: verdict.ErrNoPolicy},
		{name: "empty body", body: ``, err: verdict.ErrNotJSON},
		{name: "text", body: `Created`, err: verdict.ErrNotJSON},
		{name: "null", body: `null`, err: verdict.ErrNotJSON},
		{name: "array", body: `[{"policy":{"action":"allow"}}]`, err: verdict.ErrNotJSON},
		{name: "truncated", body: `{"policy":{"action":"allow"}`, err: verdict.ErrNotJSON},
		{name: "trailing garbage", body: `{"policy":{"action":"allow"}} x`, err: verdict.ErrNotJSON},
		{name: "too deep", body: `{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, err: verdict.ErrNotJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := verdict.Parse([]byte(tc.body))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestErrorKind(t *testing.T) {
	for err, want := range map[error]string{
		verdict.ErrNotJSON:  "not_json",
		verdict.ErrNoPolicy: "no_policy",
		errors.Join(errors.New("reading verdict"), verdict.ErrNoPolicy): "no_policy",
		errors.New("other"): "",
		nil:                 "",
	} {
		if got := verdict.ErrorKind(err); got != want {
			t.Errorf("ErrorKind(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestNoSecretsInVerdict: Castle echoes much of the request (user, ip,
// headers in some forms, properties); a verdict takes none of it, and
// never the request token.
func TestNoSecretsInVerdict(t *testing.T) {
	const token = "cst1.1764496800000.c2VjcmV0LWRldmljZQ-TOKEN-SENTINEL"
	const secretish = "sk_live_SECRET_SENTINEL"
	body := `{"id":"ev1","request_token":"` + token + `","type":"$login",
		"policy":{"action":"allow","name":"p","id":"i","revision_id":"r"},
		"context":{"ip":"81.2.69.142","headers":{"Cookie":"session=COOKIE_SENTINEL","Authorization":"Basic ` + secretish + `","User-Agent":"UA_SENTINEL"}},
		"headers":[["X-Castle-Request-Token","` + token + `"]],
		"user":{"id":"u1","email":"EMAIL_SENTINEL@example.com","traits":{"password":"PW_SENTINEL"}},
		"properties":{"card":"PROP_SENTINEL"},"params":{"email":"PARAM_SENTINEL"},
		"device":{"token":"DEVICE_TOKEN_SENTINEL","fingerprint":"fp1","user_agent":"UA_SENTINEL"},
		"ip":{"address":"81.2.69.142"},"signals":{"new_device":{}}}`
	r, err := verdict.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	v := verdict.Verdict{UserID: "u1", Endpoint: verdict.EndpointRisk}
	v.SetResponse(r)
	rec := string(v.AppendJSON(nil))
	for _, leak := range []string{token, "TOKEN-SENTINEL", secretish, "COOKIE", "UA_SENTINEL", "EMAIL_SENTINEL", "PW_SENTINEL",
		"PROP_SENTINEL", "PARAM_SENTINEL", "DEVICE_TOKEN", "81.2.69.142", "headers", "request_token", "Authorization"} {
		if strings.Contains(rec, leak) {
			t.Errorf("the record carries %q: %s", leak, rec)
		}
	}
	if !strings.Contains(rec, `"fingerprint":"fp1"`) || !strings.Contains(rec, `"signals":["new_device"]`) {
		t.Errorf("the record lost what it should carry: %s", rec)
	}
}

// TestParseCastleServer reads the verdicts of the project's
// Castle-compatible server, over HTTP, as the worker will.
func TestParseCastleServer(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()
	post := func(path, body string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, strings.NewReader(body))
		req.SetBasicAuth("", "s")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		return b
	}
	ctx := `"context":{"ip":"81.2.69.142","headers":{"User-Agent":"test"}}`
	var last verdict.Response
	for i, email := range []string{"a@example.com", "b@example.com", "c@mailinator.com"} {
		tok := castleserver.NewRequestToken(time.Now(), "shared-device")
		body := post(castleserver.FilterPath, `{"type":"$login","status":"$failed","request_token":"`+tok+`",`+ctx+`,"params":{"email":"`+email+`"}}`)
		r, err := verdict.Parse(body)
		if err != nil {
			t.Fatalf("attempt %d: %v (%s)", i, err, body)
		}
		if r.ID == "" || r.Policy.Name == "" || r.Risk == nil || len(r.Scores) != 3 ||
			r.Device.Fingerprint != castleserver.DeviceFingerprint("shared-device") {
			t.Errorf("attempt %d: %+v from %s", i, r, body)
		}
		last = r
	}
	if want := []string{"disposable_email", "multiple_accounts_per_device"}; !slices.Equal(last.Signals, want) || last.Policy.Action != "deny" {
		t.Errorf("third attempt: action %s signals %v, want deny %v", last.Policy.Action, last.Signals, want)
	}
	for _, s := range last.Signals {
		if verdict.SignalLabel(s) != s {
			t.Errorf("castleserver's signal %q is not a documented name", s)
		}
	}
}
