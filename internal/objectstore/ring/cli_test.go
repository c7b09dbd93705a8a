package ring

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIFlow(t *testing.T) {
	dir := t.TempDir()
	bp := filepath.Join(dir, "object.builder")
	run := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	run(CmdCreate(bp, 8, 3, 1))
	if _, err := CmdCreate(bp, 8, 3, 1); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("create over an existing builder: %v", err)
	}
	for _, spec := range []string{"r1z1-127.0.0.1:6200/d1", "r1z2-127.0.0.2:6200/d2", "r1z3-127.0.0.3:6200/d3_ssd"} {
		out := run(CmdAdd(bp, spec, 100))
		if !strings.Contains(out, "got id") {
			t.Errorf("add output %q", out)
		}
	}
	if _, err := CmdAdd(bp, "r1z3-127.0.0.3:6200/d3", 100); err == nil {
		t.Error("duplicate add succeeded")
	}
	if _, err := CmdAdd(bp, "bogus", 100); err == nil {
		t.Error("bad spec accepted")
	}
	out := run(CmdRebalance(bp, ""))
	if !strings.Contains(out, "Reassigned 768 (100.00%)") || !strings.Contains(out, "object.ring.gz") {
		t.Errorf("rebalance output:\n%s", out)
	}
	r, err := Load(filepath.Join(dir, "object.ring.gz"), HashPath{Suffix: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Devices()) != 3 {
		t.Errorf("ring has %d devices", len(r.Devices()))
	}

	out = run(CmdShow(bp))
	for _, want := range []string{
		"object.builder, build version 1",
		"256 partitions, 3 replicas, 1 regions, 3 zones, 3 devices, 0.00 balance, 0.00 dispersion",
		"min_part_hours", "ip address:port", "127.0.0.3:6200", "ssd",
	} {
		if !strings.Contains(out, want) && !strings.Contains(out, strings.ReplaceAll(want, "min_part_hours", "reassigned is 1")) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "  256  ") {
		t.Errorf("show should list 256 partitions per device:\n%s", out)
	}

	run(CmdAdd(bp, "r1z1-127.0.0.4:6200/d4", 100))
	out = run(CmdRebalance(bp, ""))
	if !strings.Contains(out, "No partitions could be reassigned") {
		t.Errorf("rebalance within min_part_hours:\n%s", out)
	}
	run(CmdPretendMinPartHoursPassed(bp))
	out = run(CmdRebalance(bp, ""))
	// Four equal devices: the new one takes a quarter of 768 replicas.
	if !strings.Contains(out, "Reassigned 192 ") {
		t.Errorf("rebalance after add:\n%s", out)
	}

	out = run(CmdSetWeight(bp, "d3", 50))
	if !strings.Contains(out, "weight set to 50.00") {
		t.Errorf("set-weight output %q", out)
	}
	out = run(CmdRemove(bp, "127.0.0.4:6200/d4"))
	if !strings.Contains(out, "marked for removal") {
		t.Errorf("remove output %q", out)
	}
	if out := run(CmdShow(bp)); !strings.Contains(out, "DEL") {
		t.Errorf("show should flag the removed device:\n%s", out)
	}
	if _, err := CmdRemove(bp, "d99"); err == nil || !strings.Contains(err.Error(), "no matching device") {
		t.Errorf("remove of unknown device: %v", err)
	}
	out = run(CmdRebalance(bp, ""))
	if !strings.Contains(out, "Removed 1 devices") {
		t.Errorf("rebalance after remove:\n%s", out)
	}
	run(CmdSetMinPartHours(bp, 0))
	if _, err := CmdSetMinPartHours(bp, -1); err == nil {
		t.Error("negative min_part_hours accepted")
	}
	if _, err := CmdShow(filepath.Join(dir, "missing.builder")); err == nil {
		t.Error("show of a missing builder succeeded")
	}
	os.WriteFile(bp, []byte("junk"), 0o644)
	if _, err := CmdShow(bp); err == nil || !strings.Contains(err.Error(), "corrupt ring file") {
		t.Errorf("show of a corrupt builder: %v", err)
	}
}

func TestSearchValues(t *testing.T) {
	d := Device{ID: 7, Region: 2, Zone: 3, IP: "10.0.0.1", Port: 6200, Name: "sdb", Meta: "m"}
	for value, want := range map[string]bool{
		"d7": true, "d8": false, "r2z3": true, "z4": false, "10.0.0.1": true, "-10.0.0.1:6200": true,
		":6200": true, ":6201": false, "/sdb": true, "/sdc": false, "_m": true, "d7r2z3-10.0.0.1:6200/sdb_m": true,
	} {
		q, err := parseSearch(value)
		if err != nil {
			t.Errorf("parse %q: %v", value, err)
			continue
		}
		if q.matches(d) != want {
			t.Errorf("%q matches = %v, want %v", value, !want, want)
		}
	}
	for _, bad := range []string{"", "x", "d", "r1zz", ":", "/", "1.2.3.4:abc"} {
		if _, err := parseSearch(bad); err == nil {
			t.Errorf("parse %q succeeded", bad)
		}
	}
}
