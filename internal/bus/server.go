package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded NATS server started by [StartServer].
type ServerConfig struct {
	// Host is the address to listen on; empty means 127.0.0.1, so a
	// single-node cloud does not expose its bus by accident.
	Host string
	// Port is the client port. 0 picks a random free port (read it back
	// with [Server.ClientURL]); -1 opens no listener at all and clients
	// must connect in-process with [Config.Server].
	Port int
	// StoreDir is where JetStream keeps durable messages. Set it to a
	// persistent directory in production so [CastDurable] messages survive
	// a restart of the process. Empty means a fresh temporary directory
	// that Shutdown removes: durable messages then survive a client or
	// consumer restart but not a restart of the server itself. File
	// storage is used either way so behaviour does not differ between
	// tests and production.
	StoreDir string
	// Name is the server name reported to clients and in logs; empty means
	// "nimbus-bus".
	Name string
	// Logger receives the server's log output; nil means slog.Default().
	Logger *slog.Logger
	// ReadyTimeout bounds how long StartServer waits for the server,
	// including JetStream recovering its store; 0 means 30s.
	ReadyTimeout time.Duration
}

// Server is an embedded NATS server with JetStream enabled. It lets a
// single-node Nimbus run without an external message broker, and lets tests
// start a real bus in-process.
type Server struct {
	ns      *server.Server
	tmpDir  string // removed on Shutdown; "" when the caller gave StoreDir
	inProc  bool   // no listener; clients must connect in-process
	log     *slog.Logger
	stopped sync.Once
}

// StartServer starts an embedded NATS server with JetStream and returns once
// it accepts clients, so callers can [Connect] right away.
func StartServer(cfg ServerConfig) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "bus-server")
	readyTimeout := cfg.ReadyTimeout
	if readyTimeout <= 0 {
		readyTimeout = 30 * time.Second
	}
	s := &Server{log: log}

	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// Signals belong to the process that embeds us, not to the bus.
		NoSigs: true,
		// Every compute host holds a durable consumer on the commands
		// stream; NATS's default of 1,000 per stream would cap a cloud at
		// 1,000 hosts.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	}
	if opts.ServerName == "" {
		opts.ServerName = "nimbus-bus"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch {
	case cfg.Port == 0:
		opts.Port = server.RANDOM_PORT
	case cfg.Port < 0:
		opts.Port = server.RANDOM_PORT
		opts.DontListen = true
		s.inProc = true
	default:
		opts.Port = cfg.Port
	}
	if opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "nimbus-bus-*")
		if err != nil {
			return nil, fmt.Errorf("start bus server: create store dir: %w", err)
		}
		opts.StoreDir = dir
		s.tmpDir = dir
	}

	ns, err := server.NewServer(opts)
	if err != nil {
		s.removeTmpDir()
		return nil, fmt.Errorf("start bus server: %w", err)
	}
	logger := &serverLogger{log: log}
	ns.SetLoggerV2(logger, log.Enabled(context.Background(), slog.LevelDebug), false, false)
	s.ns = ns

	go ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		err := fmt.Errorf("not ready after %s", readyTimeout)
		if fatal := logger.fatal(); fatal != "" {
			err = errors.New(fatal)
		}
		s.Shutdown()
		return nil, fmt.Errorf("start bus server: %w", err)
	}
	log.Info("bus server ready", "url", s.ClientURL(), "store_dir", opts.StoreDir)
	return s, nil
}

// ClientURL returns the URL clients pass as [Config.URL], with the port
// actually chosen when [ServerConfig.Port] was 0. It returns "" for a
// server without a listener.
func (s *Server) ClientURL() string {
	if s.inProc {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped, so the port and
// store directory can be reused at once (as a restart does). It is safe to
// call more than once.
func (s *Server) Shutdown() {
	s.stopped.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.removeTmpDir()
		s.log.Info("bus server stopped")
	})
}

func (s *Server) removeTmpDir() {
	if s.tmpDir == "" {
		return
	}
	if err := os.RemoveAll(s.tmpDir); err != nil {
		s.log.Warn("remove bus store dir", "dir", s.tmpDir, "err", err)
	}
}
