//go:build unix

package imagestore

import "syscall"

var errNoSpace error = syscall.ENOSPC
