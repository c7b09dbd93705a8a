package fernet

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

func TestKeyringReloadSeesRotation(t *testing.T) {
	dir := setupRepo(t)
	ring, err := NewKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ring.Encrypt([]byte("before"))
	if err != nil {
		t.Fatal(err)
	}

	// Another process (nimbus manage fernet-rotate) rotates.
	mustRotate(t, dir, DefaultMaxActiveKeys)
	if ring.KeySet().PrimaryIndex != 1 {
		t.Fatal("keyring changed keys without a reload")
	}
	if err := ring.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ring.KeySet().PrimaryIndex; got != 2 {
		t.Fatalf("primary after reload = %d, want 2", got)
	}
	if msg, _, err := ring.Decrypt(old, time.Hour); err != nil || string(msg) != "before" {
		t.Fatalf("old token after one rotation: %q, %v", msg, err)
	}
	fresh, err := ring.Encrypt([]byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	// The new token is under key 2: a key set holding only key 2 opens it.
	ks := mustLoad(t, dir)
	if _, _, err := Decrypt([]*Key{ks.Primary}, fresh, 0, time.Now()); err != nil {
		t.Fatalf("fresh token not under the new primary: %v", err)
	}

	mustRotate(t, dir, DefaultMaxActiveKeys)
	if err := ring.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ring.Decrypt(old, time.Hour); err != ErrInvalidToken {
		t.Fatalf("token from purged key: err = %v", err)
	}
	if _, _, err := ring.Decrypt(fresh, time.Hour); err != nil {
		t.Fatalf("token from secondary key: %v", err)
	}
}

func TestKeyringReloadUnchanged(t *testing.T) {
	dir := setupRepo(t)
	ring, err := NewKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := ring.KeySet()
	if err := ring.Reload(); err != nil {
		t.Fatal(err)
	}
	if ring.KeySet() != before {
		t.Fatal("reload of an unchanged repository replaced the snapshot")
	}
}

func TestKeyringReloadFailureKeepsKeys(t *testing.T) {
	dir := setupRepo(t)
	ring, err := NewKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := ring.Encrypt([]byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := ring.Reload(); err == nil {
		t.Fatal("reload of a missing repository succeeded")
	}
	if msg, _, err := ring.Decrypt(token, time.Hour); err != nil || string(msg) != "still here" {
		t.Fatalf("after failed reload: %q, %v", msg, err)
	}
	if _, err := NewKeyring(dir); err == nil {
		t.Fatal("NewKeyring on a missing repository succeeded")
	}
}

func TestKeyringWatch(t *testing.T) {
	dir := setupRepo(t)
	ring, err := NewKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		ring.Watch(ctx, 5*time.Millisecond, func(err error) { t.Error(err) })
	})
	defer func() { cancel(); wg.Wait() }()

	mustRotate(t, dir, DefaultMaxActiveKeys)
	deadline := time.Now().Add(5 * time.Second)
	for ring.KeySet().PrimaryIndex != 2 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the rotation")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestKeyringConcurrent exercises Encrypt/Decrypt racing with rotations
// and reloads under the race detector. A token must decrypt unless two
// rotations happened between its encryption and decryption.
func TestKeyringConcurrent(t *testing.T) {
	dir := setupRepo(t)
	ring, err := NewKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				before := ring.KeySet().PrimaryIndex
				tok, err := ring.Encrypt([]byte("payload"))
				if err != nil {
					t.Error(err)
					return
				}
				_, _, err = ring.Decrypt(tok, time.Hour)
				// Two rotations purge the key that encrypted tok.
				if err != nil && ring.KeySet().PrimaryIndex-before < 2 {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 20 {
		mustRotate(t, dir, DefaultMaxActiveKeys)
		if err := ring.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
}

func benchKeyring(b *testing.B) *Keyring {
	b.Helper()
	dir := b.TempDir()
	if err := Setup(dir); err != nil {
		b.Fatal(err)
	}
	if err := Rotate(dir, DefaultMaxActiveKeys); err != nil {
		b.Fatal(err)
	}
	ring, err := NewKeyring(dir)
	if err != nil {
		b.Fatal(err)
	}
	return ring
}

// benchPayload is the size of a typical Keystone project-scoped token
// payload (msgpack of user, methods, project, expiry, audit ids).
var benchPayload = make([]byte, 120)

func BenchmarkEncrypt(b *testing.B) {
	ring := benchKeyring(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.Encrypt(benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	ring := benchKeyring(b)
	ks := ring.KeySet()
	for _, bc := range []struct {
		name string
		key  *Key
	}{
		{"primary", ks.Primary},
		{"last-secondary", ks.Keys[len(ks.Keys)-1]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			token, err := Encrypt(bc.key, benchPayload, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ring.Decrypt(token, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("invalid", func(b *testing.B) {
		other := mustGenerate(b)
		token, err := Encrypt(other, benchPayload, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ring.Decrypt(token, time.Hour); err != ErrInvalidToken {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecryptParallel(b *testing.B) {
	ring := benchKeyring(b)
	token, err := ring.Encrypt(benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := ring.Decrypt(token, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
