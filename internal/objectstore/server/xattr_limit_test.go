package server

import (
	"fmt"
	"strings"
	"testing"
)

// TestLargeMetadata stores about the most custom metadata Swift's default
// constraints allow: more than ext4 (without ea_inode) can hold in xattrs,
// so there it is spilled after the data, and must read back, audit clean
// and range-read correctly all the same.
func TestLargeMetadata(t *testing.T) {
	n := newNode(t)
	h := map[string]string{}
	for i := 0; i < 15; i++ {
		h[fmt.Sprintf("X-Object-Meta-K%02d", i)] = strings.Repeat(fmt.Sprintf("%x", i), 256)[:256]
	}
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "0123456789", h), 201, "put")
	g := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "")
	if g.body != "0123456789" || g.header.Get("Content-Length") != "10" || g.header.Get("X-Object-Meta-K14") != h["X-Object-Meta-K14"] {
		t.Fatalf("read back: %q %v", g.body, g.header)
	}
	if r := do(t, "GET", n.objURL+"/sda/0/a/c/o", map[string]string{"Range": "bytes=-3"}, ""); r.body != "789" {
		t.Fatalf("suffix range read %q", r.body)
	}
	// A fast-POST of as much metadata spills into the (empty) .meta file.
	h["X-Timestamp"] = n.ts()
	expectStatus(t, do(t, "POST", n.objURL+"/sda/0/a/c/o", h, ""), 202, "post")
	if g := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""); g.body != "0123456789" || g.header.Get("X-Object-Meta-K00") != h["X-Object-Meta-K00"] {
		t.Fatalf("after post: %q %v", g.body, g.header)
	}
	if st, err := n.obj.AuditOnce(t.Context()); err != nil || st.Quarantined != 0 || st.Bytes != 10 {
		t.Fatalf("audit %+v %v", st, err)
	}
}
