package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Policy
		want string // substring of the error; "" = valid
	}{
		{"two", []Policy{{Index: 0, Name: "gold", Default: true}, {Index: 1, Name: "silver"}}, ""},
		{"single implicit default", []Policy{{Index: 0, Name: "gold"}}, ""},
		{"duplicate index", []Policy{{Index: 0, Name: "a", Default: true}, {Index: 0, Name: "b"}}, "index 0 is given twice"},
		{"duplicate name", []Policy{{Index: 0, Name: "a", Default: true}, {Index: 1, Name: "A"}}, "already a name of index 0"},
		{"alias clash", []Policy{{Index: 0, Name: "a", Default: true}, {Index: 1, Name: "b", Aliases: []string{"a"}}}, "already a name"},
		{"no default", []Policy{{Index: 0, Name: "a"}, {Index: 1, Name: "b"}}, "none is the default"},
		{"two defaults", []Policy{{Index: 0, Name: "a", Default: true}, {Index: 1, Name: "b", Default: true}}, "both the default"},
		{"deprecated default", []Policy{{Index: 0, Name: "a", Default: true, Deprecated: true}, {Index: 1, Name: "b"}}, "deprecated policy cannot be the default"},
		{"lone deprecated", []Policy{{Index: 0, Name: "a", Deprecated: true}}, "every policy is deprecated"},
		{"no index 0", []Policy{{Index: 1, Name: "a", Default: true}}, "index 0 is required"},
		{"negative", []Policy{{Index: 0, Name: "a", Default: true}, {Index: -1, Name: "b"}}, "negative"},
		{"bad chars", []Policy{{Index: 0, Name: "a b", Default: true}}, "only letters"},
		{"empty name", []Policy{{Index: 0, Default: true}}, "name is required"},
		{"reserved", []Policy{{Index: 0, Name: "a", Default: true}, {Index: 1, Name: "policy-0"}}, "reserved for index 0"},
	} {
		_, err := New(tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLookups(t *testing.T) {
	ps, err := New([]Policy{{Index: 1, Name: "silver", Aliases: []string{"cheap"}}, {Index: 0, Name: "gold", Default: true},
		{Index: 2, Name: "bronze", Deprecated: true}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := ps.ByName("CHEAP"); !ok || p.Index != 1 {
		t.Errorf("ByName(CHEAP) = %+v, %v", p, ok)
	}
	if ps.Default().Name != "gold" {
		t.Errorf("default %q", ps.Default().Name)
	}
	if p, err := ps.FromHeader(""); err != nil || p.Index != 0 {
		t.Errorf("FromHeader(\"\") = %+v, %v", p, err)
	}
	if _, err := ps.FromHeader("7"); !errors.Is(err, ErrUnknownIndex) {
		t.Errorf("FromHeader(7) = %v", err)
	}
	info := ps.Info()
	if len(info) != 2 || info[0]["name"] != "gold" || info[0]["default"] != true || info[1]["aliases"] != "silver, cheap" {
		t.Errorf("info %v", info)
	}
	if _, hasDefault := info[1]["default"]; hasDefault {
		t.Errorf("non-default policy lists default: %v", info[1])
	}
	if RingFile(0) != "object.ring.gz" || RingFile(2) != "object-2.ring.gz" || ObjectsDir(0) != "objects" ||
		ObjectsDir(1) != "objects-1" || AsyncPendingDir(1) != "async_pending-1" {
		t.Error("per-policy file names differ from Swift's")
	}
}
