package image

import (
	"encoding/json"
	"testing"
)

// Both JSON-patch dialects decode to the same operations.
func TestPatchDialects(t *testing.T) {
	cases := []struct {
		body           string
		op, path, val  string
		wantDecodeFail bool
	}{
		{body: `{"op": "replace", "path": "/name", "value": "x"}`, op: "replace", path: `"/name"`, val: `"x"`},
		{body: `{"replace": "/name", "value": "x"}`, op: "replace", path: `"/name"`, val: `"x"`},
		{body: `{"add": "/os_distro", "value": "debian"}`, op: "add", path: `"/os_distro"`, val: `"debian"`},
		{body: `{"remove": "/os_distro"}`, op: "remove", path: `"/os_distro"`},
		{body: `{"add": "/a", "remove": "/b"}`, wantDecodeFail: true},
		{body: `{"op": 3, "path": "/name"}`, wantDecodeFail: true},
	}
	for _, c := range cases {
		var p patchOp
		err := json.Unmarshal([]byte(c.body), &p)
		if c.wantDecodeFail {
			if err == nil {
				t.Errorf("%s: decoded as %+v, want an error", c.body, p)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if p.Op != c.op || string(p.Path) != c.path || string(p.Value) != c.val {
			t.Errorf("%s: got op %q path %s value %s", c.body, p.Op, p.Path, p.Value)
		}
	}
}
