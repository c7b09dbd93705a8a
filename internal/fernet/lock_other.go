//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package fernet

// haveRepositoryLock reports whether lockRepository really excludes other
// writers on this platform.
const haveRepositoryLock = false

// lockRepository is a no-op where flock is unavailable: concurrent
// rotations on such platforms must be prevented operationally (Keystone
// never locks either; run rotation from one place).
func lockRepository(dir string) (unlock func(), err error) {
	return func() {}, nil
}
