package bus

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

var _ server.Logger = (*serverLogger)(nil)

// serverLogger adapts nats-server's printf-style logger to slog, so the
// embedded server logs like the rest of Nimbus.
type serverLogger struct {
	log *slog.Logger

	mu        sync.Mutex
	lastFatal string // guarded by mu
}

// Noticef logs at debug: nats-server notices are mostly its startup
// banner, and StartServer logs the one line operators need at info.
func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}

// Fatalf records the message instead of exiting: an embedded server must
// never terminate the process that hosts it. StartServer reports the
// recorded message when the server fails to become ready.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.lastFatal = msg
	l.mu.Unlock()
	l.log.Error(msg, "fatal", true)
}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...))
}

func (l *serverLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

func (l *serverLogger) Tracef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// fatal returns the last fatal message, or "".
func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastFatal
}
