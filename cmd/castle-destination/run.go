package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/worker"
)

// parseRun parses and validates the run settings. Any failure is a
// usageError naming the setting.
func parseRun(args []string, getenv func(string) string, stderr io.Writer) (config.Config, error) {
	var cfg config.Config
	f := config.NewFlags("run", stderr)
	cfg.RegisterKafka(f)
	cfg.RegisterCastle(f)
	cfg.RegisterMapping(f)
	cfg.RegisterBatch(f)
	cfg.RegisterOps(f, true)
	if err := f.Parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err}
	}
	if f.Args() != nil && len(f.Args()) > 0 {
		return cfg, usageError{fmt.Errorf("run: unexpected argument %q", f.Args()[0])}
	}
	for _, v := range []func() error{
		cfg.Kafka.Validate,
		func() error { return cfg.Castle.Validate(true) },
		cfg.Mapping.Validate,
		cfg.Batch.Validate,
		cfg.Ops.Validate,
	} {
		if err := v(); err != nil {
			return cfg, usageError{err}
		}
	}
	return cfg, nil
}

func runCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseRun(args, getenv, stderr)
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
	return worker.Run(ctx, cfg, worker.Options{Logger: logger})
}
