package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRingCommands(t *testing.T) {
	dir := t.TempDir()
	b := filepath.Join(dir, "object.builder")
	if out, err := execNimbus("ring", "create", b, "8", "3", "1"); err != nil || !strings.Contains(out, "256 partitions") {
		t.Fatalf("create: %v %s", err, out)
	}
	if _, err := execNimbus("ring", "create", b, "8", "3", "1"); err == nil {
		t.Fatal("create over an existing builder succeeded")
	}
	for i, z := range []string{"1", "2", "3"} {
		spec := "r1z" + z + "-127.0.0." + z + ":6200/d" + z
		if out, err := execNimbus("ring", "add", b, spec, "100"); err != nil || !strings.Contains(out, "got id "+string(rune('0'+i))) {
			t.Fatalf("add %s: %v %s", spec, err, out)
		}
	}
	if _, err := execNimbus("ring", "add", b, "not-a-device", "100"); err == nil {
		t.Fatal("a malformed device was added")
	}
	if _, err := execNimbus("ring", "add", b, "r1z4-127.0.0.4:6200/d4", "heavy"); err == nil {
		t.Fatal("a non-numeric weight was accepted")
	}
	if out, err := execNimbus("ring", "rebalance", b); err != nil || !strings.Contains(out, "Balance is now 0.00") {
		t.Fatalf("rebalance: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "object.ring.gz")); err != nil {
		t.Fatalf("no ring file: %v", err)
	}
	out, err := execNimbus("ring", "show", b)
	if err != nil || strings.Count(out, "127.0.0.") != 3 || !strings.Contains(out, "3 zones") {
		t.Fatalf("show: %v %s", err, out)
	}
}
