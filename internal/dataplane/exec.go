package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// Runner runs one host command. netns "" means the agent's host namespace as
// configured (Config.HostNetns); anything else is a named namespace. stdin
// may be nil.
type Runner interface {
	Run(ctx context.Context, netns string, stdin []byte, argv ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec, wrapping them in `ip netns exec`
// for a named namespace.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, netns string, stdin []byte, argv ...string) ([]byte, error) {
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CommandError{Argv: argv, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

// slowCommand is how long a host command may take before the agent logs
// it (at debug level): a pass is a sequence of commands, and under load
// one of them is usually what a slow pass spent its time on.
const slowCommand = 100 * time.Millisecond

// timedRunner logs the commands of r that take longer than slowCommand.
type timedRunner struct {
	r   Runner
	log *slog.Logger
}

// Run implements Runner.
func (t timedRunner) Run(ctx context.Context, netns string, stdin []byte, argv ...string) ([]byte, error) {
	start := time.Now()
	out, err := t.r.Run(ctx, netns, stdin, argv...)
	if d := time.Since(start); d > slowCommand {
		t.log.Debug("slow host command", "netns", netns, "argv", strings.Join(argv, " "), "duration_ms", d.Milliseconds())
	}
	return out, err
}

// CommandError is a failed host command with what it printed.
type CommandError struct {
	Argv   []string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Argv, " "), e.Err, e.Stderr)
}

func (e *CommandError) Unwrap() error { return e.Err }

// RecordingRunner records commands and answers them from canned replies; it
// is the fake for unit tests of command construction. Commands run in a
// named namespace are recorded as "[ns] argv…".
type RecordingRunner struct {
	mu       sync.Mutex
	Commands []string          // guarded by mu
	Replies  map[string][]byte // argv joined by spaces → stdout
}

var _ Runner = (*RecordingRunner)(nil)

// Run implements Runner.
func (r *RecordingRunner) Run(_ context.Context, netns string, stdin []byte, argv ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := strings.Join(argv, " ")
	if netns != "" {
		line = "[" + netns + "] " + line
	}
	r.Commands = append(r.Commands, line)
	if out, ok := r.Replies[strings.Join(argv, " ")]; ok {
		return out, nil
	}
	// Unscripted JSON listings find nothing.
	if slices.Contains(argv, "-j") {
		return []byte("[]"), nil
	}
	return nil, nil
}
