package main

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/config"
)

// warnSettings names the settings that look copied with a stray newline
// or quotes, and never their values.
func TestWarnSettings(t *testing.T) {
	const password = "kafka-pw-Zq8VUx"
	for _, tc := range []struct {
		name string
		cfg  config.Config
		want []string // message prefixes, in order
	}{
		{"clean", config.Config{Kafka: config.Kafka{SASLMechanism: "plain", SASLPassword: password}}, nil},
		{"Castle secret trimmed", config.Config{Castle: config.Castle{SecretTrimmed: true}},
			[]string{"CASTLE_API_SECRET had white space or quote marks around it"}},
		{"SASL password ending in a newline", config.Config{Kafka: config.Kafka{SASLMechanism: "scram-sha-512", SASLPassword: password + "\n"}},
			[]string{"KAFKA_SASL_PASSWORD ends with a line break"}},
		{"a newline in a password that is not used", config.Config{Kafka: config.Kafka{SASLPassword: password + "\r\n"}}, nil},
		{"a password ending in a space", config.Config{Kafka: config.Kafka{SASLMechanism: "plain", SASLPassword: password + " "}}, nil},
		{"a verdict topic without scoring", config.Config{Scoring: config.Scoring{VerdictTopic: "verdicts"}},
			[]string{"VERDICT_TOPIC is set but CASTLE_SCORING is off"}},
		{"a verdict topic with scoring", config.Config{Scoring: config.Scoring{On: true, VerdictTopic: "verdicts"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			warnSettings(zap.New(core), tc.cfg)
			var got []string
			for _, e := range logs.All() {
				got = append(got, e.Message)
				if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), password) {
					t.Errorf("the log shows the password: %q", e.Message)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("logged %q, want %d lines starting %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("line %d: %q, want it to start %q", i, got[i], w)
				}
			}
		})
	}
}
