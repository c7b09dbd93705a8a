//go:build !unix

package imagestore

import "errors"

var errNoSpace = errors.New("no space left on device")
