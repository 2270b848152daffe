package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/worker"
)

type demoSettings struct {
	messages   int
	partitions int
	seed       int64
	dump       string
	verdicts   string
	logLevel   string
	timeout    time.Duration
}

func demoCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s demoSettings
	f := config.NewFlags("demo", stdout)
	f.Int(&s.messages, "messages", "DEMO_MESSAGES", 5000, "Kafka records to generate")
	f.Int(&s.partitions, "partitions", "DEMO_PARTITIONS", 6, "partitions of the demo topic")
	var seed int
	f.Int(&seed, "seed", "DEMO_SEED", 1, "seed of the generated traffic")
	f.String(&s.dump, "dump", "DEMO_DUMP", "", "write every request the local Castle API accepted to this file, as NDJSON: {\"path\",\"body\",\"response\"} per line (response: the verdict of /v1/risk and /v1/filter; request tokens redacted)")
	f.String(&s.verdicts, "verdicts", "DEMO_VERDICTS", "", "write every verdict record read back from the verdict topic to this file, as NDJSON")
	f.Enum(&s.logLevel, "log-level", "LOG_LEVEL", "warn", []string{"debug", "info", "warn", "error"}, "worker log level")
	f.Duration(&s.timeout, "timeout", "DEMO_TIMEOUT", time.Minute, "give up if the worker has not settled everything by then")
	if err := f.Parse(args, getenv); err != nil {
		return err
	}
	if len(f.Args()) > 0 {
		return usageError{fmt.Errorf("demo: unexpected argument %q (demo takes flags only)", f.Args()[0])}
	}
	s.seed = int64(seed)
	if s.messages <= 0 {
		return &config.SettingError{Env: "DEMO_MESSAGES", Flag: "messages", Err: errors.New("must be positive")}
	}
	if s.partitions <= 0 {
		return &config.SettingError{Env: "DEMO_PARTITIONS", Flag: "partitions", Err: errors.New("must be positive")}
	}
	if s.timeout <= 0 {
		return &config.SettingError{Env: "DEMO_TIMEOUT", Flag: "timeout", Err: errors.New("must be positive")}
	}
	logger, err := ops.NewLogger(s.logLevel, "console", stderr)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = logger.Sync() }()

	start := time.Now()
	env, err := harness.Start(harness.Options{Partitions: s.partitions})
	if err != nil {
		return err
	}
	defer env.Close()
	return runDemo(ctx, env, s, start, logger, stdout)
}

// runDemo produces the demo stream to env, runs the worker over it with
// scoring on, and prints what Castle received and said. start is when the
// demo began (for the time it reports).
func runDemo(ctx context.Context, env *harness.Env, s demoSettings, start time.Time, logger *zap.Logger, stdout io.Writer) error {
	fmt.Fprintf(stdout, "castle-destination demo\n")
	fmt.Fprintf(stdout, "  Kafka (in-process kfake)    %s  topic %q (%d partitions), dead letters to %q, verdicts to %q\n",
		env.Brokers[0], env.Topic, env.Partitions(), env.DLQTopic, env.VerdictTopic)
	fmt.Fprintf(stdout, "  Castle-compatible API       %s  (Basic auth, per-user rate limits, Castle's checks, toy verdicts)\n", env.CastleURL)

	records, want := harness.GenerateSecurity(s.seed, s.messages, time.Now())
	if err := env.Produce(ctx, records); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  produced %d records holding %d Segment messages (page, track, identify; logins, failed logins,\n"+
		"  registrations and password resets with request tokens; server-side, mobile, disabled, duplicate,\n"+
		"  Secure Mode and broken ones among them)\n\n", len(records), want.Total())

	vars := env.ScoringVars()
	vars["LOG_LEVEL"] = s.logLevel
	vars["KAFKA_COMMIT_INTERVAL"] = "100ms" // the demo waits for the last commit
	cfg, err := env.Config(vars)
	if err != nil {
		return err
	}
	reg := worker.NewRegistry()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx, cfg, worker.Options{Logger: logger, Registry: reg}) }()

	// Settled, then committed: a record commits only once its verdicts are
	// on the verdict topic.
	waitCtx, cancelWait := context.WithTimeout(ctx, s.timeout)
	_, werr := harness.WaitSettled(waitCtx, reg, want.Total())
	if werr == nil {
		werr = env.WaitCommitted(waitCtx, cfg.Kafka.GroupID)
	}
	cancelWait()
	stop()
	if err := <-done; err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if werr != nil {
		return werr
	}
	elapsed := time.Since(start)
	got, err := harness.Observe(reg)
	if err != nil {
		return err
	}
	scoring, err := harness.ObserveScoring(reg)
	if err != nil {
		return err
	}
	verdicts, err := env.VerdictRecords(ctx)
	if err != nil {
		return fmt.Errorf("demo: read the verdicts back: %w", err)
	}
	counts, err := harness.CountVerdicts(verdicts)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	printSummary(stdout, want, got, elapsed)
	printVerdicts(stdout, env.VerdictTopic, want, counts, scoring.Fallbacks)
	if err := printSample(stdout, env, verdicts); err != nil {
		return err
	}
	if s.dump != "" {
		if err := dump(env, s.dump); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nEvery accepted request: %s\n", s.dump)
	}
	if s.verdicts != "" {
		if err := writeVerdicts(s.verdicts, verdicts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nEvery verdict record (%d): %s\n", len(verdicts), s.verdicts)
	}
	if !sameOutcomes(want, got.Tally) {
		return errors.New("demo: what the worker did differs from what the generated stream expects (see the table)")
	}
	if !maps.Equal(nonZero(counts.Actions), nonZero(scoring.Verdicts.Actions)) {
		return fmt.Errorf("demo: the verdict topic holds %d verdicts, the worker counted %d", counts.Total(), scoring.Verdicts.Total())
	}
	if n, fb, w := counts.Total(), sum(scoring.Fallbacks), sum(want.Scored); n+fb != w {
		return fmt.Errorf("demo: %d security events scored and %d sent to /v1/log instead, but %d were to be scored", n, fb, w)
	}
	fmt.Fprintf(stdout, "\nNext: point it at your Kafka and Castle with `castle-destination run` (see README.md).\n")
	return nil
}

func printSummary(w io.Writer, want traffic.Tally, got harness.Outcomes, elapsed time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "outcome\treason / type\texpected\tworker\t\n")
	row := func(outcome, key string, want, got int) {
		mark := ""
		if want != got {
			mark = "  <- differs"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", outcome, key, want, got, mark)
	}
	for _, k := range keys(want.Forward, got.Forward) {
		row("forwarded", k, want.Forward[k], got.Forward[k])
	}
	row("identified", "identify", want.Identified, got.Tally.Identified)
	for _, k := range keys(want.Drop, got.Drop) {
		row("dropped", k, want.Drop[k], got.Drop[k])
	}
	for _, k := range keys(want.DeadLetter, got.DeadLetter) {
		row("dead-lettered", k, want.DeadLetter[k], got.DeadLetter[k])
	}
	row("total", "", want.Total(), got.Settled())
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d records consumed and settled in %.1fs (including broker start and group join).\n",
		got.Outcomes.Consumed, elapsed.Seconds())
}

// demoActions are the columns of the verdicts table: Castle's policy
// actions, and "none" for a verdict without a usable one.
var demoActions = [...]string{"allow", "challenge", "deny", "none"}

// printVerdicts prints the verdicts read back from the verdict topic: per
// endpoint how many security events were to be scored and were, by policy
// action; the top 5 signals; and the scoring fallbacks to /v1/log.
func printVerdicts(w io.Writer, topic string, want traffic.Tally, got harness.VerdictCounts, fallbacks map[string]int) {
	fmt.Fprintf(w, "\nVerdicts of Castle's Risk and Filter APIs (CASTLE_SCORING=on), read back from topic %q:\n", topic)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "endpoint\texpected\tscored\t%s\t\n", strings.Join(demoActions[:], "\t"))
	byEndpoint := got.ByEndpoint()
	for _, ep := range []string{traffic.ScoringRisk, traffic.ScoringFilter} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t", ep, want.Scored[ep], byEndpoint[ep])
		for _, a := range demoActions {
			fmt.Fprintf(tw, "%d\t", got.Actions[harness.EndpointAction{Endpoint: ep, Action: a}])
		}
		mark := ""
		if want.Scored[ep] != byEndpoint[ep] {
			mark = "  <- differs"
		}
		fmt.Fprintf(tw, "%s\n", mark)
	}
	_ = tw.Flush()
	var top []string
	for _, s := range got.TopSignals(5) {
		top = append(top, fmt.Sprintf("%s %d", s.Signal, s.Count))
	}
	if len(top) == 0 {
		top = []string{"none"}
	}
	fmt.Fprintf(w, "top signals: %s\n", strings.Join(top, ", "))
	fb := []string{}
	for _, r := range slices.Sorted(maps.Keys(fallbacks)) {
		if fallbacks[r] > 0 {
			fb = append(fb, fmt.Sprintf("%s %d", r, fallbacks[r]))
		}
	}
	if len(fb) == 0 {
		fb = []string{"none"}
	}
	fmt.Fprintf(w, "fallbacks to /v1/log (token refused, or older than SCORING_MAX_AGE when sent): %s\n", strings.Join(fb, ", "))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func nonZero[K comparable](m map[K]int) map[K]int {
	out := map[K]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func keys(a, b map[string]int) []string {
	m := maps.Clone(a)
	if m == nil {
		m = map[string]int{}
	}
	maps.Copy(m, b)
	return slices.Sorted(maps.Keys(m))
}

func sameOutcomes(want, got traffic.Tally) bool {
	return want.Identified == got.Identified &&
		maps.Equal(nonZero(want.Forward), nonZero(got.Forward)) &&
		maps.Equal(nonZero(want.Drop), nonZero(got.Drop)) &&
		maps.Equal(nonZero(want.DeadLetter), nonZero(got.DeadLetter))
}

// requestToken matches a body's request token, which samples never show.
var requestToken = regexp.MustCompile(`"request_token":"[^"]*"`)

// printSample shows two requests Castle received, the way they went on the
// wire with the credentials and request tokens redacted: a page on
// /v1/log, and a security event it scored, with the verdict record the
// worker wrote for it.
func printSample(w io.Writer, env *harness.Env, verdicts [][]byte) error {
	acc := env.Castle.Accepted()
	if len(acc) == 0 {
		return errors.New("demo: the local Castle API accepted nothing")
	}
	pick := acc[0]
	for _, r := range acc {
		if r.Type == "$page" && r.UserID != "" && bytes.Contains(r.Body, []byte(`"ip"`)) {
			pick = r
			break
		}
	}
	if err := printRequest(w, "A request Castle received", pick); err != nil {
		return err
	}
	// A scored login, preferably one Castle did not simply allow.
	var scored *castleserver.Received
	for _, r := range env.Castle.AcceptedOn(castleserver.RiskPath) {
		if scored == nil || bytes.Contains(r.Response, []byte(`"action":"challenge"`)) {
			scored = &r
		}
		if bytes.Contains(scored.Response, []byte(`"action":"challenge"`)) {
			break
		}
	}
	if scored == nil {
		return nil
	}
	if err := printRequest(w, "A security event Castle scored", *scored); err != nil {
		return err
	}
	id, _ := scored.Properties["trace_id"].(string)
	for _, v := range verdicts {
		var rec struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal(v, &rec) == nil && rec.MessageID == id && id != "" {
			fmt.Fprintf(w, "\n  Castle answered 201 with a verdict; the record written to the verdict topic:\n  %s\n", v)
			break
		}
	}
	return nil
}

func printRequest(w io.Writer, title string, r castleserver.Received) error {
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, requestToken.ReplaceAll(r.Body, []byte(`"request_token":"[redacted]"`)), "  ", "  "); err != nil {
		return fmt.Errorf("demo: sample request: %w", err)
	}
	fmt.Fprintf(w, "\n%s:\n  POST %s\n  Authorization: Basic [redacted]\n  Content-Type: application/json\n\n  %s\n", title, r.Path, pretty.Bytes())
	return nil
}

// dump writes what the local Castle API accepted to path, with the request
// tokens redacted as in the samples: the demo mints them itself, but a
// request token is never written out.
func dump(env *harness.Env, path string) error {
	var b bytes.Buffer
	if err := env.Castle.WriteNDJSON(&b); err != nil {
		return fmt.Errorf("demo: --dump: %w", err)
	}
	if err := os.WriteFile(path, requestToken.ReplaceAll(b.Bytes(), []byte(`"request_token":"[redacted]"`)), 0o644); err != nil {
		return fmt.Errorf("demo: --dump: %w", err)
	}
	return nil
}

// writeVerdicts writes the verdict records to path, one per line.
func writeVerdicts(path string, verdicts [][]byte) error {
	var b bytes.Buffer
	for _, v := range verdicts {
		b.Write(v)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("demo: --verdicts: %w", err)
	}
	return nil
}
