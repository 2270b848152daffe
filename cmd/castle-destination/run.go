package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/worker"
	"go.uber.org/zap"
)

// parseRun parses and validates the run settings. -h writes the usage to
// stdout. Errors name the setting: *config.ParseError, *config.SettingError.
func parseRun(args []string, getenv func(string) string, stdout io.Writer) (config.Config, error) {
	var cfg config.Config
	f := config.NewFlags("run", stdout)
	cfg.RegisterRun(f)
	if err := f.Parse(args, getenv); err != nil {
		return cfg, err
	}
	if len(f.Args()) > 0 {
		return cfg, usageError{fmt.Errorf("run: unexpected argument %q (run takes flags only)", f.Args()[0])}
	}
	if err := cfg.ValidateRun(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func runCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseRun(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger, err := ops.NewLogger(cfg.Ops.LogLevel, cfg.Ops.LogFormat, stderr)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = logger.Sync() }()
	for _, note := range ops.TuneRuntime(getenv) {
		logger.Info(note)
	}
	warnSettings(logger, cfg)
	return worker.Run(ctx, cfg, worker.Options{Logger: logger})
}

// warnSettings logs what the settings let through but look like a
// mistake, naming the setting, never the value. A Castle secret with white
// space or quotes around it (a trailing newline, an env file's quotes)
// would hold every delivery with 401 for a secret that looks right, so it
// was trimmed; a SASL password may hold white space, so it is used as
// given, but one ending in a newline gets the brokers' refusal explained.
func warnSettings(logger *zap.Logger, cfg config.Config) {
	if cfg.Castle.SecretTrimmed {
		logger.Warn("CASTLE_API_SECRET had white space or quote marks around it (a trailing newline from the file it was made from, " +
			"or the quotes of an env file?); they were removed, since Castle's secrets have neither")
	}
	if cfg.Scoring.VerdictTopic != "" && !cfg.Scoring.On {
		logger.Warn("VERDICT_TOPIC is set but CASTLE_SCORING is off: nothing is scored, so no verdict is written to it")
	}
	if p := cfg.Kafka.SASLPassword.Reveal(); cfg.Kafka.SASLMechanism != "" && strings.TrimRight(p, "\r\n") != p {
		logger.Warn("KAFKA_SASL_PASSWORD ends with a line break (a trailing newline from the file its Secret was made from?); " +
			"it is used as given, and the brokers will most likely refuse the login")
	}
}
