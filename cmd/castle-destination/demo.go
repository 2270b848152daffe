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
	"slices"
	"text/tabwriter"
	"time"

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
	f.String(&s.dump, "dump", "DEMO_DUMP", "", "write every request the local Castle API accepted to this file, as NDJSON")
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
	fmt.Fprintf(stdout, "castle-destination demo\n")
	fmt.Fprintf(stdout, "  Kafka (in-process kfake)    %s  topic %q (%d partitions), dead letters to %q\n",
		env.Brokers[0], env.Topic, env.Partitions(), env.DLQTopic)
	fmt.Fprintf(stdout, "  Castle-compatible API       %s  (Basic auth, per-user rate limits, Castle's checks)\n", env.CastleURL)

	records, want := harness.Generate(s.seed, s.messages, time.Now())
	if err := env.Produce(ctx, records); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  produced %d records holding %d Segment messages (page, track, identify; server-side, mobile,\n"+
		"  disabled, duplicate, Secure Mode and broken ones among them)\n\n", len(records), want.Total())

	cfg, err := env.Config(map[string]string{"LOG_LEVEL": s.logLevel})
	if err != nil {
		return err
	}
	reg := worker.NewRegistry()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx, cfg, worker.Options{Logger: logger, Registry: reg}) }()

	waitCtx, cancelWait := context.WithTimeout(ctx, s.timeout)
	_, werr := harness.WaitSettled(waitCtx, reg, want.Total())
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
	printSummary(stdout, want, got, elapsed)
	if err := printSample(stdout, env); err != nil {
		return err
	}
	if s.dump != "" {
		if err := dump(env, s.dump); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nEvery accepted request: %s\n", s.dump)
	}
	if !sameOutcomes(want, got.Tally) {
		return errors.New("demo: what the worker did differs from what the generated stream expects (see the table)")
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

func keys(a, b map[string]int) []string {
	m := maps.Clone(a)
	if m == nil {
		m = map[string]int{}
	}
	maps.Copy(m, b)
	return slices.Sorted(maps.Keys(m))
}

func sameOutcomes(want, got traffic.Tally) bool {
	nz := func(m map[string]int) map[string]int {
		out := map[string]int{}
		for k, v := range m {
			if v != 0 {
				out[k] = v
			}
		}
		return out
	}
	return want.Identified == got.Identified &&
		maps.Equal(nz(want.Forward), nz(got.Forward)) &&
		maps.Equal(nz(want.Drop), nz(got.Drop)) &&
		maps.Equal(nz(want.DeadLetter), nz(got.DeadLetter))
}

// printSample shows one request Castle received, the way it went on the
// wire, with the credentials redacted.
func printSample(w io.Writer, env *harness.Env) error {
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
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, pick.Body, "  ", "  "); err != nil {
		return fmt.Errorf("demo: sample request: %w", err)
	}
	fmt.Fprintf(w, "\nA request Castle received:\n  POST /v1/log\n  Authorization: Basic [redacted]\n  Content-Type: application/json\n\n  %s\n", pretty.Bytes())
	return nil
}

func dump(env *harness.Env, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("demo: --dump: %w", err)
	}
	if err := env.Castle.WriteNDJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("demo: --dump: %w", err)
	}
	return f.Close()
}
