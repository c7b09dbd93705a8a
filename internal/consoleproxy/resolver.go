package consoleproxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/bus"
)

// Target is where a console token leads: a guest's VNC server or serial
// console on its hypervisor host.
type Target struct {
	InstanceID string `json:"instance_id"`
	// Type is the console type the token was issued for ("novnc",
	// "serial"); a proxy serves one type only.
	Type string `json:"type"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Resolver redeems console tokens. The compute API issues them; a proxy
// running beside it asks it directly, one in another process over the
// bus (BusResolver).
type Resolver interface {
	// Resolve returns the token's target, or an error matching
	// ErrInvalidToken when the token is unknown or has expired.
	Resolve(ctx context.Context, token string) (Target, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, token string) (Target, error)

// Resolve implements Resolver.
func (f ResolverFunc) Resolve(ctx context.Context, token string) (Target, error) {
	return f(ctx, token)
}

// ErrInvalidToken: the token is unknown or has expired. The proxy refuses
// the connection before the websocket upgrade.
var ErrInvalidToken = errors.New("console token is invalid or has expired")

// TokenSubject is the bus subject on which compute API processes redeem
// tokens for console proxies in other processes.
const TokenSubject = "compute.console-token"

// codeInvalidToken is the bus error code that carries ErrInvalidToken.
const codeInvalidToken = "invalid_token"

type tokenRequest struct {
	Token string `json:"token"`
}

// BusResolver redeems tokens by calling whichever compute API process
// answers TokenSubject (see ServeTokens): how a proxy started with
// `nimbus serve --roles=console-proxy` on a host without the compute role
// finds its targets.
type BusResolver struct {
	Bus *bus.Bus
}

// Resolve implements Resolver.
func (b BusResolver) Resolve(ctx context.Context, token string) (Target, error) {
	t, err := bus.Call[tokenRequest, Target](ctx, b.Bus, TokenSubject, tokenRequest{Token: token})
	if re, ok := errors.AsType[*bus.RemoteError](err); ok && re.Code == codeInvalidToken {
		return Target{}, ErrInvalidToken
	}
	if err != nil {
		return Target{}, fmt.Errorf("resolve console token: %w", err)
	}
	return t, nil
}

// ServeTokens answers BusResolver calls with r, in a queue group so that
// each call is answered once however many compute API processes run.
func ServeTokens(b *bus.Bus, r Resolver) (*bus.Subscription, error) {
	sub, err := bus.Handle(b, TokenSubject, "compute-api", func(ctx context.Context, req tokenRequest) (Target, error) {
		t, err := r.Resolve(ctx, req.Token)
		if errors.Is(err, ErrInvalidToken) {
			return Target{}, &bus.RemoteError{Code: codeInvalidToken, Message: err.Error()}
		}
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("serve console tokens: %w", err)
	}
	return sub, nil
}
