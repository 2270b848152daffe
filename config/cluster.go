package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

// Cluster builds how every Kafka client of the worker reaches the cluster:
// the brokers, the client id, TLS (reading the CA, certificate and key
// files) and SASL. It is the one place TLS and SASL are built from the
// settings. Its errors are *SettingError and never contain the password.
func (k Kafka) Cluster() (kafkaio.Cluster, error) {
	tlsCfg, err := k.TLSConfig()
	if err != nil {
		return kafkaio.Cluster{}, err
	}
	mech, err := k.SASL()
	if err != nil {
		return kafkaio.Cluster{}, err
	}
	return kafkaio.Cluster{Brokers: k.Brokers, TLS: tlsCfg, SASL: mech, ClientID: k.ClientID}, nil
}

// TLSConfig returns the TLS configuration for Kafka connections, or nil for
// plaintext. It reads the CA, certificate and key files.
func (k Kafka) TLSConfig() (*tls.Config, error) {
	if !k.TLS && k.TLSCAFile == "" && k.TLSCertFile == "" && k.TLSKeyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.TLSCAFile != "" {
		pem, err := readPEMFile("KAFKA_TLS_CA_FILE", "kafka-tls-ca-file", k.TLSCAFile, true)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, settingErr("KAFKA_TLS_CA_FILE", "kafka-tls-ca-file", "no PEM certificate in %s", k.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	if (k.TLSCertFile == "") != (k.TLSKeyFile == "") {
		if k.TLSCertFile == "" {
			return nil, settingErr("KAFKA_TLS_CERT_FILE", "kafka-tls-cert-file", "required with KAFKA_TLS_KEY_FILE: set both or neither")
		}
		return nil, settingErr("KAFKA_TLS_KEY_FILE", "kafka-tls-key-file", "required with KAFKA_TLS_CERT_FILE: set both or neither")
	}
	if k.TLSCertFile != "" {
		certPEM, err := readPEMFile("KAFKA_TLS_CERT_FILE", "kafka-tls-cert-file", k.TLSCertFile, true)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readPEMFile("KAFKA_TLS_KEY_FILE", "kafka-tls-key-file", k.TLSKeyFile, false)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, &SettingError{Env: "KAFKA_TLS_CERT_FILE", Flag: "kafka-tls-cert-file", Err: err}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// readPEMFile reads the file a TLS setting names. Its errors never quote a
// setting that holds PEM text instead of a path (a Secret's key put in the
// variable rather than mounted as a file), which may be a private key; a
// key file's setting (quotePath false) they quote only when it has a dot
// (tls.key, /etc/kafka/client.pem), since a key's base64 on one line,
// which never has one, reads like a path.
func readPEMFile(env, flag, path string, quotePath bool) ([]byte, error) {
	if strings.Contains(path, "-----BEGIN") || strings.ContainsAny(path, "\r\n") {
		return nil, settingErr(env, flag, "holds PEM text, not the path of a file: mount it as a file and give that file's path")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if !quotePath && !strings.Contains(path, ".") && errors.As(err, &pe) {
			return nil, settingErr(env, flag, "cannot read the file it names: %v", pe.Err)
		}
		return nil, &SettingError{Env: env, Flag: flag, Err: err}
	}
	return b, nil
}

// SASL returns the SASL mechanism for Kafka connections, or nil for none.
// Its errors never contain the password.
func (k Kafka) SASL() (sasl.Mechanism, error) {
	mech := strings.ToLower(k.SASLMechanism)
	if mech == "" {
		if k.SASLUsername != "" || k.SASLPassword.IsSet() {
			return nil, settingErr("KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", "required when a SASL user name or password is set")
		}
		return nil, nil
	}
	if k.SASLUsername == "" {
		return nil, required("KAFKA_SASL_USERNAME", "kafka-sasl-username")
	}
	if !k.SASLPassword.IsSet() {
		return nil, required("KAFKA_SASL_PASSWORD", "kafka-sasl-password")
	}
	switch mech {
	case "plain":
		return plain.Mechanism{Username: k.SASLUsername, Password: k.SASLPassword.Reveal()}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if mech == "scram-sha-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, k.SASLUsername, k.SASLPassword.Reveal())
		if err != nil {
			// The scram package's error quotes the password: say only
			// what is wrong, and of which.
			if _, uerr := scram.Mechanism(algo, k.SASLUsername, "p"); uerr != nil {
				return nil, &SettingError{Env: "KAFKA_SASL_USERNAME", Flag: "kafka-sasl-username", Err: errNotSCRAMText}
			}
			why := errNotSCRAMText
			if p := k.SASLPassword.Reveal(); strings.TrimRight(p, "\r\n") != p {
				why = errors.New("it ends with a line break (a trailing newline from the file its Secret was made from?), which SCRAM's SASLprep text may not hold")
			}
			return nil, &SettingError{Env: "KAFKA_SASL_PASSWORD", Flag: "kafka-sasl-password", Err: why}
		}
		return m, nil
	default:
		return nil, settingErr("KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", "%q is not plain, scram-sha-256 or scram-sha-512", k.SASLMechanism)
	}
}

// errNotSCRAMText is why a SCRAM user name or password is refused.
var errNotSCRAMText = errors.New("not valid SASLprep text, as SCRAM needs")

// TLSSetting is the setting to name when TLS with the brokers fails: the CA
// file when one is set, else the switch that turned TLS on (or should).
func (k Kafka) TLSSetting() (env, flag string) {
	if k.TLSCAFile != "" {
		return "KAFKA_TLS_CA_FILE", "kafka-tls-ca-file"
	}
	return "KAFKA_TLS", "kafka-tls"
}
