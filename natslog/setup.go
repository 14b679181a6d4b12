package natslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig returns the configuration [Setup] gives the event stream for
// opts: subjects <prefix>.>, direct gets, atomic batch publish and
// subject rollups (the tombstones of DeleteStream) allowed, no message
// expiry, and, when limited by [WithMaxBytes], refusing new
// events rather than discarding old ones. It is exported so deployments that
// manage streams elsewhere can see what natslog expects.
func StreamConfig(opts ...Option) (jetstream.StreamConfig, error) {
	cfg, err := newConfig(forSetup, opts)
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	return streamConfig(cfg), nil
}

func streamConfig(cfg *config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               cfg.stream,
		Description:        "eventsourced events: subject <prefix>.<entity type>.<entity id>, per-entity Seq in the Es-Seq header",
		Subjects:           []string{cfg.prefix + ".>"},
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxBytes:           cfg.maxBytes,
		MaxMsgSize:         cfg.maxMsgSize,
		MaxMsgs:            -1,
		MaxMsgsPerSubject:  -1,
		MaxConsumers:       -1,
		Storage:            cfg.storage,
		Replicas:           cfg.replicas,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		AllowRollup:        true,
		DenyDelete:         true,
	}
}

// bucketConfig is the snapshot bucket's configuration.
func bucketConfig(cfg *config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      cfg.bucket,
		Description: "eventsourced snapshots: index <type>.<id>, data <type>.<id>.<save id>.<chunk>",
		History:     1,
		MaxBytes:    cfg.kvMaxBytes,
		Storage:     cfg.storage,
		Replicas:    cfg.replicas,
	}
}

// Setup creates the event stream and the snapshot bucket the options name,
// or updates them to the options' configuration (see [StreamConfig]). It is
// idempotent: call it at deployment or at every start. It reports
// [ErrNoJetStream] for a server without JetStream, and an error naming the
// version for a server too old for atomic batch publish (2.12 is needed).
//
// Changing the stream's storage, or its subjects so they no longer cover
// existing events, is refused by the server.
func Setup(ctx context.Context, js jetstream.JetStream, opts ...Option) error {
	if js == nil {
		return fmt.Errorf("%w: nil JetStream context", ErrInvalidOption)
	}
	cfg, err := newConfig(forSetup, opts)
	if err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultSetupTimeout(js))
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		if isNoJetStream(err) {
			return fmt.Errorf("%w (server %s): %w", ErrNoJetStream, js.Conn().ConnectedServerVersion(), err)
		}
		return fmt.Errorf("natslog: setup: account info: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, streamConfig(cfg))
	if err != nil {
		return fmt.Errorf("natslog: setup: create or update stream %q: %w", cfg.stream, err)
	}
	if info := stream.CachedInfo(); info == nil || !info.Config.AllowAtomicPublish {
		return fmt.Errorf("%w: stream %q: server %s does not support atomic batch publish; natslog needs nats-server 2.12 or later",
			ErrNotSetUp, cfg.stream, js.Conn().ConnectedServerVersion())
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, bucketConfig(cfg)); err != nil {
		return fmt.Errorf("natslog: setup: create or update bucket %q: %w", cfg.bucket, err)
	}
	return nil
}

// defaultSetupTimeout is the timeout of Setup when its ctx has none.
func defaultSetupTimeout(js jetstream.JetStream) (d time.Duration) {
	if d = js.Options().DefaultTimeout; d <= 0 {
		d = defaultTimeout
	}
	return d
}

// errNotFound reports whether err says a stream or bucket does not exist.
func errNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) || apiCode(err) == codeStreamNotFound
}
