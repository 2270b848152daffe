package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/replay"
)

const bucket = "archive"

// s3Archive is an in-process S3-compatible server on loopback holding a
// Segment archive, recording the requests it gets.
type s3Archive struct {
	URL    string
	Client *s3.Client
	// ids are the trace ids of the readable objects; corrupt is the key of
	// the corrupt object and its ids.
	ids        map[string]bool
	corrupt    string
	corruptIDs map[string]bool
	days       []time.Time

	mu       sync.Mutex
	gets     map[string]int // object key -> GET requests
	prefixes []string       // list requests' prefixes
	cut      map[string]bool
	// region, when set, is the bucket's: a request signed for another
	// region is answered as S3 does, 301 PermanentRedirect naming it.
	region    string
	redirects int
	// accessKey, when set, is the only access key id the server takes;
	// a request signed with another is refused as S3 does, 403
	// InvalidAccessKeyId.
	accessKey string
	// failing makes the server answer every request 500 InternalError.
	failing bool
}

// cutOnce makes the next GET of key break off in the middle of its body.
func (a *s3Archive) cutOnce(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cut[key] = true
}

// cutWriter aborts the response after n bytes of body.
type cutWriter struct {
	http.ResponseWriter
	n int
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		w.ResponseWriter.Write(p[:w.n])
		w.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection is cut mid-body
	}
	w.n -= len(p)
	return w.ResponseWriter.Write(p)
}

// newS3Archive lays out segment-logs/<source>/<day>/<file>.gz for two
// sources over four days, perObject messages per object, objectsPerDay
// objects per source and day; one object is corrupt (truncated) and one
// is stored decompressed. It serves them on loopback.
func newS3Archive(t testing.TB, objectsPerDay, perObject int) *s3Archive {
	t.Helper()
	a, be, err := buildS3Archive(objectsPerDay, perObject)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.handler(gofakes3.New(be).Server()))
	t.Cleanup(hs.Close)
	a.URL = hs.URL
	a.Client = s3.New(s3.Options{
		BaseEndpoint: aws.String(hs.URL), UsePathStyle: true, Region: "us-east-1",
		Credentials: aws.AnonymousCredentials{}, Logger: logging.Nop{},
	})
	return a
}

// buildS3Archive writes the archive into an in-memory S3 backend.
func buildS3Archive(objectsPerDay, perObject int) (*s3Archive, *s3mem.Backend, error) {
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		return nil, nil, err
	}
	a := &s3Archive{ids: map[string]bool{}, corruptIDs: map[string]bool{}, gets: map[string]int{}, cut: map[string]bool{}}
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for d := range 4 {
		day := first.AddDate(0, 0, d)
		a.days = append(a.days, day)
		for _, src := range []string{"src1", "src2"} {
			for o := range objectsPerDay {
				key := fmt.Sprintf("segment-logs/%s/%d/%d.%s.gz", src, day.UnixMilli(), day.Add(time.Duration(o+1)*time.Hour).UnixMilli(), src)
				var b bytes.Buffer
				var ids []string
				for range perObject {
					id := fmt.Sprintf("s3-%d", n)
					n++
					ids = append(ids, id)
					fmt.Fprintf(&b, `{"type":"track","event":"E","channel":"client","messageId":"%s","userId":"u%d","timestamp":"%s","receivedAt":"%s","properties":{"trace_id":"%s"},"context":{"library":{"name":"analytics.js"}}}`+"\n",
						id, n%997, day.Add(time.Hour).Format(time.RFC3339), day.Add(time.Hour).Format(time.RFC3339), id)
				}
				var zb bytes.Buffer
				zw := gzip.NewWriter(&zb)
				zw.Write(b.Bytes())
				if err := zw.Close(); err != nil {
					return nil, nil, err
				}
				body := zb.Bytes()
				switch {
				case d == 1 && src == "src2" && o == 0:
					// Cut short, as by an interrupted upload. (Flipped bytes
					// would decompress to garbled lines before the member's
					// checksum fails at its end.)
					body = body[:len(body)*2/3]
					a.corrupt = key
					for _, id := range ids {
						a.corruptIDs[id] = true
					}
				case d == 2 && src == "src1" && o == 0:
					body = b.Bytes() // served as stored, decompressed
					fallthrough
				default:
					for _, id := range ids {
						a.ids[id] = true
					}
				}
				if _, err := be.PutObject(bucket, key, map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	// Not part of the archive: a file the walk ignores.
	if _, err := be.PutObject(bucket, "segment-logs/README.txt", map[string]string{}, strings.NewReader("x"), 1, nil); err != nil {
		return nil, nil, err
	}
	return a, be, nil
}

// handler records the requests and applies the cuts asked for.
func (a *s3Archive) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.region != "" && !strings.Contains(r.Header.Get("Authorization"), "/"+a.region+"/s3/aws4_request") {
			a.redirects++
			a.mu.Unlock()
			w.Header().Set("X-Amz-Bucket-Region", a.region)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusMovedPermanently)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>%s.s3.%s.amazonaws.com</Endpoint><Bucket>%s</Bucket></Error>`,
				bucket, a.region, bucket)
			return
		}
		if a.failing {
			a.mu.Unlock()
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`)
			return
		}
		if a.accessKey != "" && !strings.Contains(r.Header.Get("Authorization"), "Credential="+a.accessKey+"/") {
			a.mu.Unlock()
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
			return
		}
		if r.Method == http.MethodGet {
			if r.URL.Query().Has("list-type") || r.URL.Query().Has("prefix") {
				a.prefixes = append(a.prefixes, r.URL.Query().Get("prefix"))
			} else if key, ok := strings.CutPrefix(r.URL.Path, "/"+bucket+"/"); ok {
				k, _ := url.PathUnescape(key)
				a.gets[k]++
				if a.cut[k] {
					delete(a.cut, k)
					w = &cutWriter{ResponseWriter: w, n: 1500}
				}
			}
		}
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// useEnv points the AWS SDK's own configuration (NewS3Client) at the
// archive through the environment, as a pod would be configured.
func (a *s3Archive) useEnv(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", a.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func (a *s3Archive) getsOf(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k, c := range a.gets {
		if strings.Contains(k, prefix) {
			n += c
		}
	}
	return n
}

func (a *s3Archive) listed(prefix string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.prefixes {
		if strings.Contains(p, prefix) {
			return true
		}
	}
	return false
}

// check reports whether the replayed ids are every readable id once, and
// none of the corrupt object's: its member never verified.
func (a *s3Archive) check(t *testing.T, got map[string]int) {
	t.Helper()
	for id := range a.ids {
		if got[id] != 1 {
			t.Errorf("event %s replayed %d times, want once", id, got[id])
		}
	}
	for id, c := range got {
		if a.corruptIDs[id] {
			t.Errorf("event %s of the corrupt object was replayed", id)
		} else if !a.ids[id] {
			t.Errorf("unexpected event %s", id)
		}
		if c > 1 {
			t.Errorf("event %s replayed %d times", id, c)
		}
	}
}

// TestS3ArchiveDryRunThenCastle replays the archive through the real
// command's wiring, with the AWS SDK configured from the environment:
// first --dry-run, then to the Castle-compatible server. Both send every
// event of the readable objects once, the corrupt object is reported and
// skipped, and the summary's total is what the server received.
func TestS3ArchiveDryRunThenCastle(t *testing.T) {
	a := newS3Archive(t, 2, 150)
	a.useEnv(t)

	var out, errOut bytes.Buffer
	s := settings(t, "http://127.0.0.1:9", "s3://"+bucket+"/segment-logs/")
	s.DryRun = true
	sum, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	dry := ids(t, out.Bytes())
	a.check(t, dry)
	if sum.Progress.Done != 16 || sum.Progress.Total != 16 {
		t.Errorf("progress %d of %d objects, want 16 of 16", sum.Progress.Done, sum.Progress.Total)
	}
	if !strings.Contains(errOut.String(), "skipped: s3://"+bucket+"/"+a.corrupt) {
		t.Errorf("the corrupt object was not reported:\n%s", errOut.String())
	}

	srv, castleURL := castleServer(t, 0)
	s = settings(t, castleURL, "s3://"+bucket+"/segment-logs/")
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	out.Reset()
	sum, err = replay.Execute(context.Background(), s, replay.Options{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range srv.Accepted() {
		id, _ := r.Properties["trace_id"].(string) // "" for a line garbled by the corrupt object
		got[id]++
	}
	a.check(t, got)
	if len(got) != len(dry) {
		t.Errorf("Castle got %d events, the dry run printed %d", len(got), len(dry))
	}
	if int64(sum.Sent()) != srv.Stats().Accepted || !strings.Contains(out.String(), fmt.Sprintf("%d events sent", srv.Stats().Accepted)) {
		t.Errorf("summary says %d sent, Castle accepted %d:\n%s", sum.Sent(), srv.Stats().Accepted, out.String())
	}
	if !sum.Finished {
		t.Error("the replay is not recorded as finished")
	}
}

// TestS3WindowSkipsDayFolders replays [day 1, day 3): the folders of
// days 0 and 3 are neither listed nor read.
func TestS3WindowSkipsDayFolders(t *testing.T) {
	a := newS3Archive(t, 2, 20)
	src := &replay.S3{Client: a.Client, Bucket: bucket, Prefix: "", Since: a.days[1], Until: a.days[3]}
	r := dryRun(t, context.Background(), src, func(c *replay.Config) { c.Pipeline.Keep = replay.Window(a.days[1], a.days[3]) })
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, d := range []int{0, 3} {
		folder := fmt.Sprintf("/%d/", a.days[d].UnixMilli())
		if n := a.getsOf(folder); n != 0 {
			t.Errorf("day %d: %d objects read outside the window", d, n)
		}
		if a.listed(folder) {
			t.Errorf("day %d: its folder was listed", d)
		}
	}
	for _, d := range []int{1, 2} {
		if a.getsOf(fmt.Sprintf("/%d/", a.days[d].UnixMilli())) == 0 {
			t.Errorf("day %d inside the window was not read", d)
		}
	}
	if src.SkippedDays() != 4 { // two sources, two days each
		t.Errorf("skipped %d day folders, want 4", src.SkippedDays())
	}
	if p := src.Progress(); p.Total != 8 || p.Done != 8 {
		t.Errorf("progress %d of %d objects, want 8 of 8", p.Done, p.Total)
	}
	got := ids(t, r.out.Bytes())
	if len(got) == 0 {
		t.Fatal("nothing replayed")
	}
	// Object names end in .src1.gz/.src2.gz with the upload time: every
	// id replayed comes from days 1 and 2 (150..) by construction.
	for id := range got {
		var n int
		fmt.Sscanf(id, "s3-%d", &n)
		if day := n / (2 * 2 * 20); day != 1 && day != 2 {
			t.Errorf("event %s of day %d replayed", id, day)
		}
	}
}

// TestS3ShardsDisjointAndComplete replays the archive as three shards.
func TestS3ShardsDisjointAndComplete(t *testing.T) {
	a := newS3Archive(t, 1, 120)
	got := map[string]int{}
	for s := range 3 {
		src := &replay.S3{Client: a.Client, Bucket: bucket, Prefix: "segment-logs"}
		r := dryRun(t, context.Background(), src, func(c *replay.Config) { c.Shard = replay.Shard{Index: s, Count: 3} })
		if r.err != nil {
			t.Fatal(r.err)
		}
		part := ids(t, r.out.Bytes())
		if len(part) == 0 {
			t.Errorf("shard %d sent nothing", s)
		}
		for id, c := range part {
			got[id] += c
		}
	}
	a.check(t, got)
}

// TestS3ResumeMidArchive interrupts an S3 replay to Castle in the middle
// of the archive: the checkpoint records the finished objects and the
// offset inside the ones in progress, and the resumed replay sends the
// rest, each event once.
func TestS3ResumeMidArchive(t *testing.T) {
	a := newS3Archive(t, 2, 150)
	srv, castleURL := castleServer(t, 5*time.Millisecond)
	s := settings(t, castleURL, "s3://"+bucket+"/")
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	s.Rate = 500 // reads a second of sending ahead: the interrupt lands mid-archive

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if srv.WaitFor(ctx, 500) == nil {
			cancel()
		}
	}()
	_, err := replay.Execute(ctx, s, replay.Options{Stdout: &bytes.Buffer{}, S3: a.Client})
	cancel()
	if !errors.Is(err, replay.ErrInterrupted) {
		t.Fatalf("first run: %v, want interrupted", err)
	}
	cp, err := replay.LoadCheckpoint(s.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Finished || cp.Done == 0 || len(cp.Open) == 0 || cp.Open[0].Next == 0 {
		t.Errorf("checkpoint of an interruption mid-archive: %+v; want finished objects and an object in progress", cp)
	}
	first := srv.Stats().Accepted
	t.Logf("first run: %+v", srv.Stats())

	s.Resume = replay.ResumeOn
	sum, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &bytes.Buffer{}, S3: a.Client})
	if err != nil {
		t.Fatal(err)
	}
	if sum.UnitsSkipped == 0 || sum.Skipped == 0 {
		t.Errorf("the resumed run skipped %d objects and %d records", sum.UnitsSkipped, sum.Skipped)
	}
	if int64(sum.Sent()) != srv.Stats().Accepted-first {
		t.Errorf("resumed run: summary %d sent, Castle accepted %d", sum.Sent(), srv.Stats().Accepted-first)
	}
	got := map[string]int{}
	for _, r := range srv.Accepted() {
		id, _ := r.Properties["trace_id"].(string) // "" for a line garbled by the corrupt object
		got[id]++
	}
	a.check(t, got)
	t.Logf("first run %d events; checkpoint: %d objects done, %d in progress (first at record %d); resumed run %d events",
		first, cp.Done, len(cp.Open), cp.Open[0].Next, sum.Sent())
}

// TestS3ObjectCutMidBodyIsFetchedAgain breaks the connection in the
// middle of two objects (one gzip, one stored decompressed): each is
// fetched again and its records already sent are not sent twice.
func TestS3ObjectCutMidBodyIsFetchedAgain(t *testing.T) {
	a := newS3Archive(t, 1, 300)
	var keys []string
	for k := range a.objectKeys(t) {
		keys = append(keys, k)
	}
	gzipKey := fmt.Sprintf("segment-logs/src1/%d/%d.src1.gz", a.days[0].UnixMilli(), a.days[0].Add(time.Hour).UnixMilli())
	plainKey := fmt.Sprintf("segment-logs/src1/%d/%d.src1.gz", a.days[2].UnixMilli(), a.days[2].Add(time.Hour).UnixMilli())
	a.cutOnce(gzipKey)
	a.cutOnce(plainKey)
	src := &replay.S3{Client: a.Client, Bucket: bucket, Prefix: "segment-logs/"}
	r := dryRun(t, context.Background(), src, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	a.check(t, ids(t, r.out.Bytes()))
	for _, k := range []string{gzipKey, plainKey} {
		if n := a.getsOf(k); n != 2 {
			t.Errorf("%s fetched %d times, want 2 (cut, then again)", k, n)
		}
	}
	if len(keys) != 8 {
		t.Errorf("archive has %d objects, want 8", len(keys))
	}
}

func (a *s3Archive) objectKeys(t *testing.T) map[string]bool {
	t.Helper()
	out, err := a.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("segment-logs/src")})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, o := range out.Contents {
		keys[aws.ToString(o.Key)] = true
	}
	return keys
}

// TestS3ProgressLineNamesShardAndObjects checks the progress line of a
// shard: its shard, objects done of the total, events/s and the ETA.
func TestS3ProgressLineNamesShardAndObjects(t *testing.T) {
	a := newS3Archive(t, 1, 30)
	var progress bytes.Buffer
	src := &replay.S3{Client: a.Client, Bucket: bucket, Prefix: "segment-logs/"}
	r := dryRun(t, context.Background(), src, func(c *replay.Config) {
		c.Shard = replay.Shard{Index: 1, Count: 2}
		c.Progress, c.ProgressEvery = &progress, time.Hour // the final line only
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	line := progress.String()
	for _, want := range []string{"replay shard 1/2: 100.0% ", "8/8 objects", fmt.Sprintf("%d sent", r.sum.Sent()), "events/s", "ETA 0s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
}

// A bucket in another region than the configured one (no AWS_REGION: the
// SDK's us-east-1): S3 answers 301 PermanentRedirect naming the bucket's
// region, which the AWS SDK for Go does not follow. The replay follows it,
// says so once, and reads the whole archive.
func TestS3BucketInAnotherRegion(t *testing.T) {
	a := newS3Archive(t, 1, 20)
	a.useEnv(t)
	t.Setenv("AWS_REGION", "us-east-1")
	a.mu.Lock()
	a.region = "eu-west-1"
	a.mu.Unlock()

	core, logs := observer.New(zap.InfoLevel)
	var out bytes.Buffer
	s := settings(t, "http://127.0.0.1:9", "s3://"+bucket+"/segment-logs/")
	s.DryRun = true
	if _, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &out, Stderr: io.Discard, Logger: zap.New(core)}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	a.check(t, ids(t, out.Bytes()))
	a.mu.Lock()
	redirects := a.redirects
	a.mu.Unlock()
	if redirects != 1 {
		t.Errorf("S3 redirected %d requests, want 1: after the first, every request goes to the bucket's region", redirects)
	}
	said := logs.FilterMessageSnippet("another region").All()
	if len(said) != 1 || said[0].ContextMap()["region"] != "eu-west-1" {
		t.Errorf("logged %v, want one line naming the bucket's region", said)
	}
}

// A prefix with no archive under it (mistyped, or a bucket not written
// yet) fails the replay naming the bucket and prefix, rather than
// finishing a replay of nothing; no checkpoint is left in the way.
func TestS3PrefixWithoutArchiveFails(t *testing.T) {
	a := newS3Archive(t, 1, 5)
	a.useEnv(t)
	srv, castleURL := castleServer(t, 0)
	s := settings(t, castleURL, "s3://"+bucket+"/segment-logz/")
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	_, err := replay.Execute(context.Background(), s, replay.Options{Stdout: io.Discard})
	var se *replay.SettingError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "s3://"+bucket+"/segment-logz/") || !strings.Contains(err.Error(), "no Segment archive") {
		t.Fatalf("replay of an empty prefix: %v, want a setting error naming it", err)
	}
	if n := srv.Stats().Accepted; n != 0 {
		t.Errorf("Castle accepted %d events", n)
	}
	if _, err := os.Stat(s.Checkpoint); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a checkpoint was left: %v", err)
	}
}

// A replay whose S3 archive cannot be listed at start because of a
// setting (credentials S3 refuses, a bucket that does not exist, an
// AWS_ENDPOINT_URL nothing answers at) fails with one line naming the
// setting (exit 2) and no secret, and any other failure to list (S3
// answering errors) fails plainly; either way nothing is sent and no
// checkpoint or user cache is left to refuse the same command (without
// --resume) once the cause is fixed.
func TestS3StartFailuresLeaveNoCheckpoint(t *testing.T) {
	const secret = "wrong-secret-0123456789"
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, a *s3Archive) string // the source
		setting []string                                // "": not a setting
	}{
		{"credentials refused", func(t *testing.T, a *s3Archive) string {
			a.mu.Lock()
			a.accessKey = "test"
			a.mu.Unlock()
			t.Setenv("AWS_ACCESS_KEY_ID", "not-the-key")
			t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
			return "s3://" + bucket + "/segment-logs/"
		}, []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "InvalidAccessKeyId"}},
		{"bucket missing", func(t *testing.T, a *s3Archive) string {
			return "s3://no-such-bucket/segment-logs/"
		}, []string{"s3://no-such-bucket/segment-logs/", `bucket "no-such-bucket" does not exist`}},
		{"endpoint dead", func(t *testing.T, a *s3Archive) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			dead := "http://" + ln.Addr().String()
			ln.Close()
			t.Setenv("AWS_ENDPOINT_URL", dead)
			return "s3://" + bucket + "/segment-logs/"
		}, []string{"AWS_ENDPOINT_URL", "127.0.0.1"}},
		{"S3 failing", func(t *testing.T, a *s3Archive) string {
			a.mu.Lock()
			a.failing = true
			a.mu.Unlock()
			return "s3://" + bucket + "/segment-logs/"
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newS3Archive(t, 1, 5)
			a.useEnv(t)
			t.Setenv("AWS_MAX_ATTEMPTS", "1")
			srv, castleURL := castleServer(t, 0)
			s := settings(t, castleURL, tc.setup(t, a))
			s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
			if err == nil {
				t.Fatal("the replay did not fail")
			}
			t.Log(err)
			var se *replay.SettingError
			if isSetting := errors.As(err, &se); isSetting != (tc.setting != nil) {
				t.Errorf("replay: %v; a setting error: %v, want %v", err, isSetting, tc.setting != nil)
			}
			for _, want := range tc.setting {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("replay: %v, want it to name %s", err, want)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "\n") {
				t.Errorf("replay: %q, want one line without the secret", err)
			}
			if n := srv.Stats().Accepted; n != 0 {
				t.Errorf("Castle accepted %d events", n)
			}
			for _, f := range []string{s.Checkpoint, s.Checkpoint + ".users"} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s was left: %v", filepath.Base(f), err)
				}
			}
		})
	}
}
