package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/version"
)

// CheckTopics checks at start that every topic exists on the cluster and
// may be used; the worker never creates one. A missing or refused topic is
// a *config.SettingError naming the setting that names the topic (exit 2),
// and so are credentials or TLS the brokers refuse. Brokers that do not
// answer are retried with backoff for k.JoinTimeout, logging the first few
// failures and then one a minute; after that the error says so (exit 1).
// It returns ctx's error if ctx ends first.
//
// run checks cfg.Topics(true); replay checks the dead-letter topic, and
// the source topic of a kafka: source, the same way.
func CheckTopics(ctx context.Context, k config.Kafka, topics []config.TopicSetting, log *zap.Logger) error {
	if len(topics) == 0 {
		return nil
	}
	cluster, err := k.Cluster()
	if err != nil {
		return err
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Topic
	}
	err = kafkaio.CheckTopics(ctx, cluster, names, kafkaio.CheckOptions{Wait: k.JoinTimeout, Logger: log})
	if err == nil || ctx.Err() != nil {
		return err
	}
	var te *kafkaio.TopicError
	if errors.As(err, &te) {
		switch te.Class {
		case kafkaio.TopicMissing, kafkaio.NotAuthorized:
			for _, t := range topics {
				if t.Topic == te.Topic {
					return &config.SettingError{Env: t.Env, Flag: t.Flag, Err: te}
				}
			}
		case kafkaio.AuthFailed:
			return &config.SettingError{Env: "KAFKA_SASL_USERNAME", Flag: "kafka-sasl-username", Err: te}
		case kafkaio.TLSFailed:
			env, flag := k.TLSSetting()
			return &config.SettingError{Env: env, Flag: flag, Err: te}
		}
	}
	return fmt.Errorf("start-up check of the Kafka topics: %w", err)
}

// consumerError names the setting when the consumer stopped because the
// brokers refuse one: the group's ACLs or its id (KAFKA_GROUP_ID), a session
// timeout outside the brokers' bounds (KAFKA_SESSION_TIMEOUT), the topic's
// ACLs (KAFKA_TOPIC). Such an error is a *config.SettingError (exit 2).
func consumerError(err error) error {
	var env, flag string
	switch {
	case errors.Is(err, kafka.GroupAuthorizationFailed), errors.Is(err, kafka.InvalidGroupId):
		env, flag = "KAFKA_GROUP_ID", "kafka-group-id"
	case errors.Is(err, kafka.InvalidSessionTimeout):
		env, flag = "KAFKA_SESSION_TIMEOUT", "kafka-session-timeout"
	case errors.Is(err, kafka.TopicAuthorizationFailed):
		env, flag = "KAFKA_TOPIC", "kafka-topic"
	default:
		return fmt.Errorf("kafka consumer: %w", err)
	}
	return &config.SettingError{Env: env, Flag: flag, Err: err}
}

// registerBuildInfo registers castle_destination_build_info on reg.
func registerBuildInfo(reg prometheus.Registerer) error {
	v := version.Get()
	if err := reg.Register(ops.NewBuildInfo(v.Version, v.Commit, v.GoVersion)); err != nil {
		return fmt.Errorf("register build info: %w", err)
	}
	return nil
}
