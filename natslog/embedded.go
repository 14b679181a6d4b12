package natslog

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedServer is a nats-server running inside this process, with
// JetStream keeping its data in files under a directory: the zero-setup
// store for examples, tests and single-process applications. It listens on
// the loopback interface only.
//
// Start it with [StartEmbedded], connect with [EmbeddedServer.Connect] and
// stop it with [EmbeddedServer.Shutdown]. Data survives a restart on the same
// directory.
type EmbeddedServer struct {
	srv *server.Server
	dir string
}

// serverConfig is what the server options set.
type serverConfig struct {
	port       int
	maxPayload int32
	ready      time.Duration
	logger     *slog.Logger
	syncAlways bool
}

// ServerOption configures [StartEmbedded].
type ServerOption func(*serverConfig) error

// WithServerPort sets the loopback port to listen on; 0, the default, picks
// a free one.
func WithServerPort(port int) ServerOption {
	return func(c *serverConfig) error {
		if port < 0 || port > 65535 {
			return fmt.Errorf("%w: WithServerPort(%d): not a port", ErrInvalidOption, port)
		}
		c.port = port
		return nil
	}
}

// WithServerMaxPayload sets the largest message the server accepts, in
// bytes (the server's default is 1 MiB; 64 MiB at most). Events bigger than
// this are refused with [ErrTooLarge]; snapshots of any size are cut into
// chunks that fit.
func WithServerMaxPayload(n int32) ServerOption {
	return func(c *serverConfig) error {
		if n < 1024 || n > 64<<20 {
			return fmt.Errorf("%w: WithServerMaxPayload(%d): want 1 KiB to 64 MiB", ErrInvalidOption, n)
		}
		c.maxPayload = n
		return nil
	}
}

// WithServerLogger routes the server's log to l: notices and warnings at
// Info and Warn, errors at Error, debug and trace at Debug. The default is
// silence.
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) error {
		if l == nil {
			return fmt.Errorf("%w: WithServerLogger(nil)", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithServerSyncAlways makes JetStream flush every write to disk (fsync)
// before acknowledging it. By default it syncs every two minutes: an
// acknowledged event survives the process crashing (it is in the operating
// system's cache), but not the machine losing power before the next sync.
// Syncing always costs a disk flush per append.
func WithServerSyncAlways() ServerOption {
	return func(c *serverConfig) error {
		c.syncAlways = true
		return nil
	}
}

// WithServerReadyTimeout bounds how long [StartEmbedded] waits for the
// server to take connections and for JetStream to be up (default 10s).
func WithServerReadyTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithServerReadyTimeout(%v): want a positive duration", ErrInvalidOption, d)
		}
		c.ready = d
		return nil
	}
}

// StartEmbedded starts a nats-server in this process with JetStream storing
// its data under dir (created if missing), listening on 127.0.0.1, and
// waits until it takes connections. Call [Setup] on a connection to it to
// create the stream and bucket.
func StartEmbedded(dir string, opts ...ServerOption) (*EmbeddedServer, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: StartEmbedded: empty data directory", ErrInvalidOption)
	}
	c := serverConfig{port: server.RANDOM_PORT, ready: 10 * time.Second}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil ServerOption", ErrInvalidOption)
		}
		if err := opt(&c); err != nil {
			return nil, err
		}
	}
	if c.port == 0 {
		c.port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("natslog: embedded server data directory: %w", err)
	}
	o := &server.Options{
		ServerName:             "natslog-embedded",
		Host:                   "127.0.0.1",
		Port:                   c.port,
		MaxPayload:             c.maxPayload,
		JetStream:              true,
		StoreDir:               dir,
		SyncAlways:             c.syncAlways,
		NoSigs:                 true,
		NoLog:                  c.logger == nil,
		DisableJetStreamBanner: true,
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("natslog: embedded server: %w", err)
	}
	if c.logger != nil {
		// Tracing every protocol message would drown the log; debug only
		// when the logger wants it.
		srv.SetLoggerV2(slogAdapter{c.logger}, c.logger.Enabled(context.Background(), slog.LevelDebug), false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(c.ready) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natslog: embedded server on %s:%d with data in %s not ready within %v", o.Host, c.port, dir, c.ready)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w: the embedded server could not enable JetStream in %s", ErrNoJetStream, dir)
	}
	return &EmbeddedServer{srv: srv, dir: dir}, nil
}

// ClientURL returns the URL clients connect to, nats://127.0.0.1:<port>.
func (e *EmbeddedServer) ClientURL() string { return e.srv.ClientURL() }

// Port returns the port the server listens on; pass it to
// [WithServerPort] to restart on the same address.
func (e *EmbeddedServer) Port() int {
	if a, ok := e.srv.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Dir returns the data directory.
func (e *EmbeddedServer) Dir() string { return e.dir }

// Connect connects to the server. It reconnects forever, every 100ms, so
// clients ride out a restart of the server on the same port; opts come
// after those defaults and may override them.
func (e *EmbeddedServer) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{
		nats.Name("natslog embedded client"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(e.ClientURL(), all...)
	if err != nil {
		return nil, fmt.Errorf("natslog: connect to the embedded server: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has: JetStream has flushed
// its files, and clients see the connection drop.
func (e *EmbeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// slogAdapter is the server's logger on a *slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, v []any) {
	if a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, fmt.Sprintf(format, v...), slog.String("component", "nats-server"))
	}
}

func (a slogAdapter) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.log(slog.LevelWarn, format, v) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.log(slog.LevelError, format, v) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.log(slog.LevelError, format, v) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.log(slog.LevelDebug, format, v) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.log(slog.LevelDebug, format, v) }
