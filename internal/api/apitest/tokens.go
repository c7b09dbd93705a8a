// Package apitest holds test doubles for services built on internal/api.
package apitest

import (
	"context"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Tokens is a token validator for tests: each token names the identity
// it proves. The identity handed out carries its token, as the real
// validators' do (services forward it, e.g. to other services' APIs).
type Tokens map[string]*api.Identity

// ValidateToken implements api.TokenValidator.
func (t Tokens) ValidateToken(_ context.Context, token string) (*api.Identity, error) {
	id, ok := t[token]
	if !ok {
		return nil, api.Unauthorized("The request you have made requires authentication.")
	}
	c := *id
	c.Token = token
	return &c, nil
}
