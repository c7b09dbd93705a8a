package server

import (
	"encoding/json"
	"maps"
	"testing"
)

// metadataSamples are what objects store (a PUT's metadata, one with user
// metadata in several scripts, one that encoding/json escapes) and inputs
// the fast path must decline or reject as encoding/json does.
var metadataSamples = []string{
	`{"Content-Length":"4096","Content-Type":"application/octet-stream","ETag":"d41d8cd98f00b204e9800998ecf8427e","X-Timestamp":"1732700000.12345","name":"/AUTH_x/c/o"}`,
	`{"X-Object-Meta-Färg":"grön","X-Object-Meta-名前":"値","name":"/AUTH_x/c/ö"}`,
	`{"Content-Type":"text/html; charset=\u003cx\u003e","name":"/a/c/\"quoted\""}`,
	` { "a" : "b" , "c":"d" } `,
	`{}`, `{"a":"b","a":"c"}`,
	`null`, `{"a":1}`, `{"a":null}`, `{"a":"b",}`, `{"a":"b"} x`, `{"a" "b"}`, `[]`, ``, `{`,
	"{\"a\":\"\xff\"}", "{\"a\":\"\x01\"}", `{"a":"\ud800"}`,
}

func TestDecodeMetadataAgreesWithEncodingJSON(t *testing.T) {
	plain := 0
	for _, s := range metadataSamples {
		checkDecodeMetadata(t, []byte(s))
		if _, ok := decodePlainObject([]byte(s)); ok {
			plain++
		}
	}
	// The first two samples, one in ASCII and one not, and the three
	// well-formed small objects take the fast path.
	if plain != 5 {
		t.Errorf("%d samples took the fast path, want 5", plain)
	}
	md, err := decodeMetadata([]byte(metadataSamples[0]))
	if err != nil || md["ETag"] != "d41d8cd98f00b204e9800998ecf8427e" || md["name"] != "/AUTH_x/c/o" || len(md) != 5 {
		t.Errorf("decodeMetadata = %v, %v", md, err)
	}
}

func FuzzDecodeMetadata(f *testing.F) {
	for _, s := range metadataSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecodeMetadata)
}

// checkDecodeMetadata fails unless decodeMetadata and encoding/json agree
// on b: the same map, or both an error.
func checkDecodeMetadata(t *testing.T, b []byte) {
	got, err := decodeMetadata(b)
	want := map[string]string{}
	werr := json.Unmarshal(b, &want)
	if (err != nil) != (werr != nil) {
		t.Fatalf("%q: error %v, encoding/json %v", b, err, werr)
	}
	if err == nil && !maps.Equal(got, want) {
		t.Fatalf("%q: got %v, encoding/json %v", b, got, want)
	}
}
