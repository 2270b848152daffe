package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/pipeline"
)

// S3API is what the S3 source needs of an S3 client (*s3.Client).
type S3API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// NewS3Client returns an S3 client configured the AWS SDK's own way:
// credentials from its chain (environment, shared config and credentials
// files, web identity / IRSA, container and instance roles), region from
// AWS_REGION or the shared config (default us-east-1), and an endpoint
// from AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 for S3-compatible stores
// (MinIO and others), which are then addressed path-style
// (http://endpoint/bucket/key). The SDK's own log lines go to log.
func NewS3Client(ctx context.Context, log *zap.Logger) (*s3.Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	for _, env := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		if err := checkEndpoint(env, os.Getenv(env)); err != nil {
			return nil, err
		}
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithLogger(sdkLogger(log.Named("aws"))))
	if err != nil {
		return nil, fmt.Errorf("replay: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	custom := cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = custom
		// Objects written without a checksum (most archives) are normal.
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}

// checkEndpoint refuses an endpoint setting that is not an http(s) URL
// with a host, as a *SettingError naming env: the SDK would fail later,
// quoting the URL with any password in it.
func checkEndpoint(env, v string) error {
	if v == "" {
		return nil
	}
	u, err := neturl.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not quoted: it may carry a password, and did not parse.
		return &SettingError{fmt.Errorf("%s is not an http(s) URL with a host", env)}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Shown without them: a query or fragment may carry a credential.
		base := *u
		base.RawQuery, base.ForceQuery, base.Fragment, base.RawFragment = "", false, "", ""
		return &SettingError{fmt.Errorf("%s %s must not have a query or fragment", env, base.Redacted())}
	}
	return nil
}

// sdkLogger writes the AWS SDK's log lines to log: warnings as warnings,
// the rest at debug level.
func sdkLogger(log *zap.Logger) logging.Logger {
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		if c == logging.Warn {
			log.Warn(fmt.Sprintf(format, v...))
			return
		}
		log.Debug(fmt.Sprintf(format, v...))
	})
}

// ParseS3URL splits s3://BUCKET/PREFIX.
func ParseS3URL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not s3://BUCKET/PREFIX", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%q names no bucket", u)
	}
	return bucket, prefix, nil
}

// DefaultReadAhead is how many S3 objects are fetched and decoded at once
// by default.
const DefaultReadAhead = 4

// S3 is a source of Segment's S3 archive:
// [prefix/]segment-logs/<source-id>/<day>/<file>.gz, where <day> is the
// UTC day the messages were received on, as a unix time folder name (in
// milliseconds; ten digits are read as seconds).
//
// Prefix may point anywhere in that tree (the bucket's root, a
// segment-logs folder, one source, one day). Folders under it are walked;
// a folder named by a day outside [Since, Until) is skipped whole before
// anything in it is listed or read (a message received on such a day is
// not replayed even if its event time is inside the window: widen the
// window by a day to catch late arrivals). Objects whose folder names no
// day are read too, before the dated ones.
//
// Objects are read in time order: day folders by day (a day's folders of
// several sources one after another), objects in key order within a
// folder. ReadAhead objects are fetched and decoded concurrently ahead of
// the one being fed, each holding a gzip member's compressed bytes while
// its checksum is verified (at most MaxMemberBytes) and a few hundred KiB
// of records;
// only one day folder's object names are listed at a time, so memory does
// not grow with the bucket. An object that S3 serves decompressed is read
// as such (gzip is sniffed). A network error in the middle of an object
// is retried by fetching it again and skipping the records already sent;
// corrupt gzip members are reported and skipped, like for files.
type S3 struct {
	Client       S3API
	Bucket       string
	Prefix       string
	Since, Until time.Time
	ReadAhead    int
	Logger       *zap.Logger

	problems
	objects, total atomic.Int64 // objects done (read or skipped) of those listed
	read, size     atomic.Int64 // bytes
	skippedDays    atomic.Int64

	regionOnce sync.Once
	regional   *regional // Client, following the bucket to its region
}

// api is the client every request goes through: Client, sent to the
// bucket's own region once S3 has named it.
func (s *S3) api() *regional {
	s.regionOnce.Do(func() {
		log := s.Logger
		if log == nil {
			log = zap.NewNop()
		}
		s.regional = &regional{S3API: s.Client, bucket: s.Bucket, log: log}
		if c, ok := s.Client.(*s3.Client); ok {
			s.regional.configured = c.Options().Region
		}
	})
	return s.regional
}

// regional is an S3API that follows a bucket to its region. S3 answers a
// request signed for another region than the bucket's with 301
// PermanentRedirect and the bucket's region in X-Amz-Bucket-Region (a 400
// that carries the header is taken the same way); the AWS SDK for Go does not
// follow it (those for Python and Ruby do), and its error does not name
// the region. So a replay of a bucket in eu-west-1 without AWS_REGION
// (us-east-1 then) failed with "PermanentRedirect: The bucket you are
// attempting to access must be addressed using the specified endpoint".
// regional sends that request again to the region named, and every later
// one there.
type regional struct {
	S3API
	bucket     string
	configured string // the client's own region, if known
	log        *zap.Logger
	region     atomic.Pointer[string] // the bucket's, once learnt
}

// opts adds the learnt region, if any, to a request's options.
func (r *regional) opts(opts []func(*s3.Options)) []func(*s3.Options) {
	if reg := r.region.Load(); reg != nil {
		return append(opts[:len(opts):len(opts)], func(o *s3.Options) { o.Region = *reg })
	}
	return opts
}

// moved reports whether err names the bucket's region and that region is
// not the one the request went to: then the request is worth sending
// again, once.
func (r *regional) moved(err error) bool {
	reg := bucketRegion(err)
	if reg == "" {
		return false
	}
	cur := r.region.Swap(&reg)
	if (cur != nil && *cur == reg) || (cur == nil && reg == r.configured) {
		return false // already there: S3 refuses for another reason
	}
	r.log.Info("the S3 bucket is in another region than the configured one (AWS_REGION, default us-east-1); "+
		"its requests go to the bucket's region (set AWS_REGION to it to save the redirect)",
		zap.String("bucket", r.bucket), zap.String("region", reg))
	return true
}

func (r *regional) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out, err := r.S3API.ListObjectsV2(ctx, in, r.opts(opts)...)
	if err != nil && r.moved(err) {
		return r.S3API.ListObjectsV2(ctx, in, r.opts(opts)...)
	}
	return out, err
}

func (r *regional) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := r.S3API.GetObject(ctx, in, r.opts(opts)...)
	if err != nil && r.moved(err) {
		return r.S3API.GetObject(ctx, in, r.opts(opts)...)
	}
	return out, err
}

// bucketRegion is the region S3 names in an answer that refused a request
// sent to another region (301 or 400 with X-Amz-Bucket-Region), or "".
func bucketRegion(err error) string {
	var re interface{ HTTPResponse() *smithyhttp.Response }
	if !errors.As(err, &re) {
		return ""
	}
	resp := re.HTTPResponse()
	if resp == nil || resp.Response == nil {
		return ""
	}
	if resp.StatusCode != http.StatusMovedPermanently && resp.StatusCode != http.StatusBadRequest {
		return ""
	}
	return resp.Header.Get("X-Amz-Bucket-Region")
}

// Progress reports objects and bytes read.
func (s *S3) Progress() Progress {
	return Progress{Unit: "objects", Done: s.objects.Load(), Total: s.total.Load(), Bytes: s.read.Load(), Size: s.size.Load()}
}

// SkippedDays is the number of day folders skipped by the window.
func (s *S3) SkippedDays() int64 { return s.skippedDays.Load() }

// folder is a folder of objects to read.
type folder struct {
	prefix string
	day    time.Time // zero: not a day folder
}

// maxDepth bounds the folder walk under the prefix (segment-logs/<source>/<day>
// is three levels).
const maxDepth = 8

// folders lists the folders to read, in reading order, and counts their
// objects for progress.
func (s *S3) folders(ctx context.Context) ([]folder, error) {
	var out []folder
	var walk func(prefix string, depth int) error
	walk = func(prefix string, depth int) error {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")}
		var subs []string
		objects := false
		for p := s3.NewListObjectsV2Paginator(s.api(), in); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("replay: list s3://%s/%s: %w", s.Bucket, prefix, err)
			}
			for _, o := range page.Contents {
				if archiveFile(path.Base(aws.ToString(o.Key))) {
					objects = true
					s.total.Add(1)
					s.size.Add(aws.ToInt64(o.Size))
				}
			}
			for _, cp := range page.CommonPrefixes {
				subs = append(subs, aws.ToString(cp.Prefix))
			}
		}
		if objects {
			day, _ := folderDay(prefix)
			out = append(out, folder{prefix: prefix, day: day})
		}
		if depth >= maxDepth {
			return nil
		}
		for _, sub := range subs {
			if day, ok := folderDay(sub); ok && !s.dayInWindow(day) {
				s.skippedDays.Add(1)
				continue
			}
			if err := walk(sub, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(s.Prefix, 0); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b folder) int {
		if c := a.day.Compare(b.day); c != 0 {
			return c
		}
		return cmp.Compare(a.prefix, b.prefix)
	})
	return out, nil
}

// startError names the setting behind a failure to list the archive at
// start, when one is to blame, as a *SettingError: credentials S3 refuses,
// a bucket that does not exist, an endpoint (AWS_ENDPOINT_URL) where
// nothing answers or whose host does not exist. Any other error is
// returned as it is. The line names the setting and quotes S3's error
// code and message, never a credential.
func (s *S3) startError(err error) error {
	url := fmt.Sprintf("s3://%s/%s", s.Bucket, s.Prefix)
	var ae smithy.APIError
	if errors.As(err, &ae) {
		said := ae.ErrorCode()
		if m := ae.ErrorMessage(); m != "" {
			said += ": " + m
		}
		switch ae.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity":
			return &SettingError{fmt.Errorf("AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE or the pod's role): "+
				"S3 refused them listing %s (%s)", url, said)}
		case "AccessDenied", "AllAccessDisabled":
			return &SettingError{fmt.Errorf("AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the pod's role): "+
				"they may not list %s: the identity needs s3:ListBucket and s3:GetObject on the bucket (%s)", url, said)}
		case "NoSuchBucket":
			return &SettingError{fmt.Errorf("replay source %s: bucket %q does not exist (%s): check the bucket's name, and AWS_ENDPOINT_URL for an S3-compatible store", url, s.Bucket, said)}
		}
		return err
	}
	endpoint := s.endpoint()
	if endpoint == "" {
		return err
	}
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &SettingError{fmt.Errorf("AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) %s: nothing answers there (connection refused) listing %s", endpoint, url)}
	case errors.As(err, &dns) && dns.IsNotFound:
		return &SettingError{fmt.Errorf("AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) %s: host %q does not exist (listing %s)", endpoint, dns.Name, url)}
	}
	return err
}

// endpoint is the S3-compatible store's URL the client is configured
// with (its user and password, if any, left out), or "" for AWS's own.
func (s *S3) endpoint() string {
	c, ok := s.Client.(*s3.Client)
	if !ok {
		return ""
	}
	e := aws.ToString(c.Options().BaseEndpoint)
	if e == "" {
		return ""
	}
	if u, err := neturl.Parse(e); err == nil {
		u.User = nil
		return u.String()
	}
	return e
}

// folderDay reads a day folder's name: the last path element of prefix,
// a unix time in milliseconds (or seconds, at most ten digits).
func folderDay(prefix string) (time.Time, bool) {
	if !strings.HasSuffix(prefix, "/") {
		return time.Time{}, false
	}
	name := path.Base(strings.TrimSuffix(prefix, "/"))
	if len(name) < 9 || len(name) > 13 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	if len(name) <= 10 {
		return time.Unix(n, 0).UTC(), true
	}
	return time.UnixMilli(n).UTC(), true
}

// dayInWindow reports whether the day [day, day+24h) meets [Since, Until).
func (s *S3) dayInWindow(day time.Time) bool {
	return (s.Until.IsZero() || day.Before(s.Until)) && (s.Since.IsZero() || day.Add(24*time.Hour).After(s.Since))
}

// object is one S3 object being fetched and decoded ahead of the feed.
type object struct {
	seq  int64
	key  string
	skip bool // finished in an earlier run
	recs chan []record
	n    int64 // records in the object, once recs is closed
	err  error // a failure to fetch, once recs is closed
}

type record struct {
	idx   int64
	value []byte
}

// Read lists the folders, then fetches objects ahead and feeds their
// records in order.
func (s *S3) Read(ctx context.Context, feed *Feed) error {
	log := s.Logger
	if log == nil {
		log = zap.NewNop()
	}
	folders, err := s.folders(ctx)
	if err != nil {
		return s.startError(err)
	}
	if len(folders) == 0 && s.skippedDays.Load() == 0 {
		// A prefix mistyped, or a bucket not yet written: a replay of
		// nothing is not a finished replay.
		return &SettingError{fmt.Errorf("s3://%s/%s holds no Segment archive objects (Segment writes [prefix/]segment-logs/<source-id>/<day>/<file>.gz): check the bucket and prefix", s.Bucket, s.Prefix)}
	}
	log.Info("listed the S3 archive", zap.String("bucket", s.Bucket), zap.String("prefix", s.Prefix),
		zap.Int("folders", len(folders)), zap.Int64("objects", s.total.Load()), zap.Int64("bytes", s.size.Load()),
		zap.Int64("days_outside_window", s.skippedDays.Load()))

	ahead := s.ReadAhead
	if ahead <= 0 {
		ahead = DefaultReadAhead
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *object, ahead)
	slots := make(chan struct{}, ahead)
	var fetchers sync.WaitGroup
	listed := make(chan error, 1)
	go func() {
		defer close(queue)
		listed <- s.list(ctx, folders, feed, queue, slots, &fetchers)
	}()
	defer func() {
		cancel()
		for range queue { // let the lister finish
		}
		fetchers.Wait()
	}()

	for o := range queue {
		if o.skip {
			s.objects.Add(1)
			continue
		}
		if err := s.feedObject(ctx, feed, o); err != nil {
			return err
		}
		<-slots
		s.objects.Add(1)
	}
	return <-listed
}

// list walks the folders' objects in order: finished ones are queued as
// skipped, the others fetched (at most cap(slots) at once) and queued.
func (s *S3) list(ctx context.Context, folders []folder, feed *Feed, queue chan<- *object, slots chan struct{}, fetchers *sync.WaitGroup) error {
	var seq int64
	for _, f := range folders {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(f.prefix), Delimiter: aws.String("/")}
		for p := s3.NewListObjectsV2Paginator(s.api(), in); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("replay: list s3://%s/%s: %w", s.Bucket, f.prefix, err)
			}
			for _, obj := range page.Contents {
				key := aws.ToString(obj.Key)
				if !archiveFile(path.Base(key)) {
					continue
				}
				o := &object{seq: seq, key: key}
				seq++
				done, err := feed.finished(o.seq, key, -1)
				if err != nil {
					return err
				}
				if done {
					feed.resumed.Add(1)
					s.read.Add(aws.ToInt64(obj.Size))
					o.skip = true
				} else {
					select {
					case slots <- struct{}{}:
					case <-ctx.Done():
						return ctx.Err()
					}
					o.recs = make(chan []record, 4)
					fetchers.Go(func() { s.fetch(ctx, o) })
				}
				select {
				case queue <- o:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	return nil
}

// feedObject sends one object's records to the feed.
func (s *S3) feedObject(ctx context.Context, feed *Feed, o *object) error {
	u, err := feed.Open(ctx, o.seq, o.key, 0)
	if err != nil {
		return err
	}
	source := "s3://" + s.Bucket + "/" + o.key
	for batch := range o.recs {
		for _, r := range batch {
			if u == nil {
				continue
			}
			if r.value == nil { // reported: nothing to send
				u.Pass(r.idx)
				continue
			}
			if err := u.Send(ctx, r.idx, pipeline.Record{Value: r.value, Source: source, Offset: r.idx}); err != nil {
				return err
			}
		}
	}
	if o.err != nil {
		return o.err
	}
	if u != nil {
		u.Close(o.n)
	}
	return nil
}

// fetchAttempts bounds how often an object is fetched again after a
// network error in its body.
const fetchAttempts = 4

// batchBytes bounds the record bytes of one batch handed to the feeder.
const batchBytes = 256 << 10

// fetch reads and decodes one object into o.recs, then closes it.
func (s *S3) fetch(ctx context.Context, o *object) {
	defer close(o.recs)
	var sent int64 // records handed over; a retry skips them
	for attempt := 1; ; attempt++ {
		n, err := s.fetchOnce(ctx, o, &sent)
		if err == nil {
			o.n = n
			return
		}
		var ie inputError
		retry := (errors.As(err, &ie) || isTransient(err)) && attempt < fetchAttempts && ctx.Err() == nil
		if !retry {
			o.err = err
			return
		}
		if s.Logger != nil {
			s.Logger.Warn("reading an S3 object failed; fetching it again", zap.String("key", o.key), zap.Int("attempt", attempt), zap.Error(err))
		}
		t := time.NewTimer(time.Duration(attempt) * 500 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			o.err = ctx.Err()
			return
		}
	}
}

// isTransient reports whether a GetObject error may pass (the SDK already
// retried the request itself).
func isTransient(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		c := re.HTTPStatusCode()
		return c == 0 || c >= 500 || c == 429
	}
	return false
}

func (s *S3) fetchOnce(ctx context.Context, o *object, sent *int64) (int64, error) {
	out, err := s.api().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(o.key)})
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("replay: get s3://%s/%s: %w", s.Bucket, o.key, err)
	}
	defer out.Body.Close()
	var batch []record
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case o.recs <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		*sent += int64(len(batch))
		batch, size = nil, 0
		return nil
	}
	already := *sent
	name := "s3://" + s.Bucket + "/" + o.key
	n, err := decode(ctx, name, counter{out.Body, &s.read}, func(idx int64, value []byte) error {
		if idx < already {
			return nil
		}
		batch = append(batch, record{idx: idx, value: value})
		size += len(value)
		if len(batch) >= 256 || size >= batchBytes {
			return flush()
		}
		return nil
	}, func(p Problem) {
		if p.Record >= already {
			s.add(s.Logger, p)
		}
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	return n, err
}
