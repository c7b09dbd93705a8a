package fernet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Keyring serves Encrypt and Decrypt from an in-memory snapshot of a key
// repository and swaps in a new snapshot when asked to reload. It is safe
// for concurrent use; Encrypt and Decrypt do no file I/O and take no lock.
//
// Reloading is explicit: call Reload (for example from a SIGHUP handler or
// after `nimbus manage fernet-rotate`), or run Watch, which reloads on a
// fixed interval. Keyring deliberately does not compare directory mtimes
// to decide whether to reload: mtimes have coarse granularity on common
// filesystems (a rotation step landing in the same tick as the previous
// check would be missed), and reading a handful of 44-byte files is cheap
// enough to simply do on every poll.
type Keyring struct {
	dir    string
	mu     sync.Mutex // serialises Reload so snapshots are stored in load order
	keyset atomic.Pointer[KeySet]
}

// NewKeyring loads the repository in dir and returns a Keyring serving it.
func NewKeyring(dir string) (*Keyring, error) {
	r := &Keyring{dir: dir}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// KeySet returns the snapshot currently in use. It must not be modified.
func (r *Keyring) KeySet() *KeySet { return r.keyset.Load() }

// Reload re-reads the repository. If it fails the Keyring keeps serving
// the previous keys and the error is returned. If the keys are unchanged
// the current snapshot is kept, so KeySet's pointer identity tells callers
// whether anything changed.
func (r *Keyring) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ks, err := Load(r.dir)
	if err != nil {
		return fmt.Errorf("reload fernet keys: %w", err)
	}
	if cur := r.keyset.Load(); cur != nil && cur.equal(ks) {
		return nil
	}
	r.keyset.Store(ks)
	return nil
}

// Watch calls Reload every interval until ctx is done, passing reload
// errors to onError (which may be nil). A failed reload leaves the last
// good keys in service, so a briefly unreadable repository does not take
// token validation down.
func (r *Keyring) Watch(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Reload(); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// Encrypt seals plaintext with the current primary key, stamped with the
// current time.
func (r *Keyring) Encrypt(plaintext []byte) (string, error) {
	return r.keyset.Load().Encrypt(plaintext, time.Now())
}

// Decrypt opens token with any current key; see the package-level Decrypt
// for ttl semantics and errors.
func (r *Keyring) Decrypt(token string, ttl time.Duration) ([]byte, time.Time, error) {
	return r.keyset.Load().Decrypt(token, ttl, time.Now())
}
