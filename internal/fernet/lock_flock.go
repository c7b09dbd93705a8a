//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package fernet

import (
	"os"
	"path/filepath"
	"syscall"
)

// haveRepositoryLock reports whether lockRepository really excludes other
// writers on this platform.
const haveRepositoryLock = true

// lockRepository takes an exclusive flock on dir/.lock, serialising Setup
// and Rotate across goroutines and processes on this machine (flock locks
// belong to the open file, so two opens in one process also exclude each
// other). The lock is released by the returned func, or by the kernel if
// the process dies.
func lockRepository(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
