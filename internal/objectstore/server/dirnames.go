package server

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// direntBufs holds getdents buffers. An object's hash dir holds one to
// three entries and a suffix dir a few hundred, so 8 KiB is one call for
// most directories.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// readDirNames appends the names in dir (without "." and "..") to names.
//
// Every GET and HEAD lists its object's hash dir, and each replication pass
// lists every changed suffix and its hash dirs. os.ReadDir costs an *os.File
// (a poller registration attempt, a finalizer), a DirEntry per name and a
// sort; here a listing is an open, getdents until it returns nothing, and a
// close. Errors are *os.PathError, so errors.Is(err, os.ErrNotExist) holds
// for a missing dir as it does with os.ReadDir.
func readDirNames(dir string, names []string) ([]string, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return names, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	for {
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Getdents(fd, *bp)
			return err
		})
		if err != nil {
			return names, &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent((*bp)[:n], -1, names)
	}
}

// retryEINTR runs call until it ends with anything but EINTR.
func retryEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
