package server

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func (n *node) putAccount(t testing.TB, a string) {
	t.Helper()
	expectStatus(t, do(t, "PUT", n.acctURL+"/sda/2/"+a, map[string]string{"X-Timestamp": n.ts()}, ""), 201, "put account")
}

func (n *node) putContainer(t testing.TB, a, c string) {
	t.Helper()
	expectStatus(t, do(t, "PUT", n.contURL+"/sda/1/"+a+"/"+c, map[string]string{
		"X-Timestamp": n.ts(), "X-Account-Host": n.acctHost, "X-Account-Partition": "2", "X-Account-Device": "sda",
	}, ""), 201, "put container")
}

func (n *node) putRow(t testing.TB, a, c, o string, size string) {
	t.Helper()
	expectStatus(t, do(t, "PUT", n.contURL+"/sda/1/"+a+"/"+c+"/"+o, map[string]string{
		"X-Timestamp": n.ts(), "X-Size": size, "X-Content-Type": "text/plain", "X-Etag": md5hex(o),
	}, ""), 201, "put row "+o)
}

func listing(t testing.TB, base string, q url.Values) []string {
	t.Helper()
	r := do(t, "GET", base+"?"+q.Encode(), nil, "")
	if r.status == 204 {
		return nil
	}
	expectStatus(t, r, 200, "listing "+q.Encode())
	return strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
}

func TestContainerListings(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	names := []string{"a", "a-b", "a/1", "a/2", "a/x/y", "b", "b/1", "c", "d/e/f", "é"}
	for _, nm := range names {
		n.putRow(t, "a", "c", nm, "1")
	}
	base := n.contURL + "/sda/1/a/c"
	for _, tc := range []struct {
		q    string
		want string
	}{
		{"", "a a-b a/1 a/2 a/x/y b b/1 c d/e/f é"},
		{"limit=3", "a a-b a/1"},
		{"marker=a/2", "a/x/y b b/1 c d/e/f é"},
		{"marker=a/2&end_marker=c", "a/x/y b b/1"},
		{"prefix=a/", "a/1 a/2 a/x/y"},
		{"delimiter=/", "a a-b a/ b b/ c d/ é"},
		{"delimiter=/&limit=4", "a a-b a/ b"},
		{"delimiter=/&marker=a/", "b b/ c d/ é"},
		{"prefix=a/&delimiter=/", "a/1 a/2 a/x/"},
		{"prefix=d/&delimiter=/", "d/e/"},
		{"reverse=true", "é d/e/f c b/1 b a/x/y a/2 a/1 a-b a"},
		{"reverse=true&limit=2", "é d/e/f"},
		{"reverse=true&marker=b", "a/x/y a/2 a/1 a-b a"},
		{"reverse=true&marker=c&end_marker=a/2", "b/1 b a/x/y"},
		{"reverse=true&delimiter=/", "é d/ c b/ b a/ a-b a"},
		{"reverse=true&prefix=a/&delimiter=/", "a/x/ a/2 a/1"},
		{"prefix=zzz", ""},
	} {
		q, _ := url.ParseQuery(tc.q)
		got := strings.Join(listing(t, base, q), " ")
		if got != tc.want {
			t.Errorf("%s: got %q want %q", tc.q, got, tc.want)
		}
	}
	expectStatus(t, do(t, "GET", base+"?limit=10001", nil, ""), 412, "limit too big")
	expectStatus(t, do(t, "GET", base+"?limit=x", nil, ""), 412, "bad limit")
	expectStatus(t, do(t, "GET", base+"?prefix=%FF", nil, ""), 400, "bad utf8 prefix")

	// JSON.
	r := do(t, "GET", base+"?format=json&prefix=a/&delimiter=/", nil, "")
	expectStatus(t, r, 200, "json")
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("json content type %q", r.header.Get("Content-Type"))
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(r.body), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0]["name"] != "a/1" || items[0]["hash"] != md5hex("a/1") || items[0]["bytes"] != 1.0 ||
		items[0]["content_type"] != "text/plain" || len(items[0]["last_modified"].(string)) != 26 || items[2]["subdir"] != "a/x/" {
		t.Fatalf("json items %v", items)
	}
	// Accept header selects the format too.
	r = do(t, "GET", base+"?limit=1", map[string]string{"Accept": "application/json"}, "")
	if !strings.HasPrefix(r.body, "[{") {
		t.Fatalf("accept json: %q", r.body)
	}
	// XML.
	r = do(t, "GET", base+"?format=xml&prefix=a/&delimiter=/", nil, "")
	expectStatus(t, r, 200, "xml")
	var doc struct {
		XMLName xml.Name `xml:"container"`
		Name    string   `xml:"name,attr"`
		Objects []struct {
			Name         string `xml:"name"`
			Hash         string `xml:"hash"`
			Bytes        string `xml:"bytes"`
			ContentType  string `xml:"content_type"`
			LastModified string `xml:"last_modified"`
		} `xml:"object"`
		Subdirs []struct {
			Name string `xml:"name,attr"`
		} `xml:"subdir"`
	}
	if err := xml.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatalf("xml %v: %s", err, r.body)
	}
	if doc.Name != "c" || len(doc.Objects) != 2 || doc.Objects[0].Name != "a/1" || doc.Objects[0].Hash != md5hex("a/1") || doc.Objects[0].Bytes != "1" || len(doc.Subdirs) != 1 || doc.Subdirs[0].Name != "a/x/" ||
		!strings.HasPrefix(r.body, `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Fatalf("xml doc %+v", doc)
	}
	// Empty listings: 204 for plain, [] for JSON.
	expectStatus(t, do(t, "GET", base+"?prefix=zzz", nil, ""), 204, "empty plain")
	if r := do(t, "GET", base+"?prefix=zzz&format=json", nil, ""); r.status != 200 || r.body != "[]" {
		t.Fatalf("empty json %d %q", r.status, r.body)
	}
}

func TestContainerRowsLastWriteWins(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	t1, t2, t3 := n.ts(), n.ts(), n.ts()
	path := n.contURL + "/sda/1/a/c/o"
	row := func(ts, size string) {
		expectStatus(t, do(t, "PUT", path, map[string]string{"X-Timestamp": ts, "X-Size": size, "X-Content-Type": "x", "X-Etag": "e"}, ""), 201, "row")
	}
	row(t2, "20")
	row(t1, "10") // late, older: ignored
	h := do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != "1" || h.header.Get("X-Container-Bytes-Used") != "20" {
		t.Fatalf("stats %v", h.header)
	}
	expectStatus(t, do(t, "DELETE", path, map[string]string{"X-Timestamp": t1}, ""), 204, "old delete")
	if h := do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, ""); h.header.Get("X-Container-Object-Count") != "1" {
		t.Fatalf("older delete applied: %v", h.header)
	}
	expectStatus(t, do(t, "DELETE", path, map[string]string{"X-Timestamp": t3}, ""), 204, "delete")
	h = do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != "0" || h.header.Get("X-Container-Bytes-Used") != "0" {
		t.Fatalf("stats after delete %v", h.header)
	}
	row(t2, "20") // older than the tombstone row
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); got != nil {
		t.Fatalf("resurrected %v", got)
	}
}

func TestContainerMetadataAndDelete(t *testing.T) {
	n := newNode(t)
	base := n.contURL + "/sda/1/a/c"
	expectStatus(t, do(t, "PUT", base, map[string]string{"X-Timestamp": n.ts(), "X-Container-Meta-Color": "red", "X-Container-Read": ".r:*"}, ""), 201, "create")
	expectStatus(t, do(t, "PUT", base, map[string]string{"X-Timestamp": n.ts()}, ""), 202, "re-put")
	expectStatus(t, do(t, "POST", base, map[string]string{"X-Timestamp": n.ts(), "X-Container-Meta-Size": "L", "X-Container-Meta-Color": ""}, ""), 204, "post")
	h := do(t, "HEAD", base, nil, "")
	expectStatus(t, h, 204, "head")
	if h.header.Get("X-Container-Meta-Size") != "L" || h.header.Get("X-Container-Meta-Color") != "" || h.header.Get("X-Container-Read") != ".r:*" {
		t.Fatalf("metadata %v", h.header)
	}
	expectStatus(t, do(t, "POST", base, map[string]string{"X-Timestamp": n.ts(), "X-Container-Meta-Big": strings.Repeat("v", 257)}, ""), 400, "meta too long")
	n.putRow(t, "a", "c", "o", "5")
	expectStatus(t, do(t, "DELETE", base, map[string]string{"X-Timestamp": n.ts()}, ""), 409, "delete non-empty")
	expectStatus(t, do(t, "DELETE", base+"/o", map[string]string{"X-Timestamp": n.ts()}, ""), 204, "delete row")
	expectStatus(t, do(t, "DELETE", base, map[string]string{"X-Timestamp": n.ts()}, ""), 204, "delete empty")
	expectStatus(t, do(t, "HEAD", base, nil, ""), 404, "head deleted")
	expectStatus(t, do(t, "GET", base, nil, ""), 404, "get deleted")
	expectStatus(t, do(t, "PUT", base, map[string]string{"X-Timestamp": n.ts()}, ""), 201, "recreate")
	expectStatus(t, do(t, "HEAD", n.contURL+"/sda/1/a/nope", nil, ""), 404, "missing")
	expectStatus(t, do(t, "PUT", n.contURL+"/sda/1/a/nope/o", map[string]string{"X-Timestamp": n.ts(), "X-Size": "1", "X-Content-Type": "x"}, ""), 404, "row into missing container")
	// The database sits where Swift puts it.
	hash := hashPath("pre", "suf", "a", "c")
	if _, err := os.Stat(filepath.Join(n.dev, "containers", "1", hash[29:], hash, hash+".db")); err != nil {
		t.Fatal(err)
	}
}

// TestObjectContainerAccountFlow follows one object through all three
// servers: the object server updates the container, the container reports
// to the account, and both keep their stats.
func TestObjectContainerAccountFlow(t *testing.T) {
	n := newNode(t)
	n.putAccount(t, "AUTH_t")
	n.putContainer(t, "AUTH_t", "c")
	n.putContainer(t, "AUTH_t", "d")
	expectStatus(t, n.putObject(t, "/sda/0/AUTH_t/c/o1", n.ts(), "12345", n.containerHeaders()), 201, "put o1")
	expectStatus(t, n.putObject(t, "/sda/0/AUTH_t/c/o2", n.ts(), "123", n.containerHeaders()), 201, "put o2")
	h := do(t, "HEAD", n.contURL+"/sda/1/AUTH_t/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != "2" || h.header.Get("X-Container-Bytes-Used") != "8" {
		t.Fatalf("container stats %v", h.header)
	}
	if sent, failed := n.cont.UpdateOnce(t.Context()); sent != 1 || failed != 0 {
		t.Fatalf("container updater sent %d failed %d", sent, failed)
	}
	a := do(t, "HEAD", n.acctURL+"/sda/2/AUTH_t", nil, "")
	if a.header.Get("X-Account-Container-Count") != "2" || a.header.Get("X-Account-Object-Count") != "2" || a.header.Get("X-Account-Bytes-Used") != "8" {
		t.Fatalf("account stats %v", a.header)
	}
	// Overwrite and delete flow through too.
	expectStatus(t, n.putObject(t, "/sda/0/AUTH_t/c/o1", n.ts(), "1", n.containerHeaders()), 201, "overwrite o1")
	del := n.containerHeaders()
	del["X-Timestamp"] = n.ts()
	expectStatus(t, do(t, "DELETE", n.objURL+"/sda/0/AUTH_t/c/o2", del, ""), 204, "delete o2")
	n.cont.UpdateOnce(t.Context())
	a = do(t, "GET", n.acctURL+"/sda/2/AUTH_t?format=json", nil, "")
	var items []map[string]any
	json.Unmarshal([]byte(a.body), &items)
	if a.header.Get("X-Account-Object-Count") != "1" || a.header.Get("X-Account-Bytes-Used") != "1" || len(items) != 2 ||
		items[0]["name"] != "c" || items[0]["count"] != 1.0 || items[0]["bytes"] != 1.0 || items[1]["name"] != "d" {
		t.Fatalf("account after overwrite: %v %v", a.header, items)
	}
	// Deleting a container removes it from the account's listing and counts.
	expectStatus(t, do(t, "DELETE", n.contURL+"/sda/1/AUTH_t/d", map[string]string{"X-Timestamp": n.ts()}, ""), 204, "delete d")
	a = do(t, "GET", n.acctURL+"/sda/2/AUTH_t", nil, "")
	if a.body != "c\n" || a.header.Get("X-Account-Container-Count") != "1" {
		t.Fatalf("account after container delete: %q %v", a.body, a.header)
	}
	// XML account listing.
	x := do(t, "GET", n.acctURL+"/sda/2/AUTH_t?format=xml", nil, "")
	if !strings.Contains(x.body, `<account name="AUTH_t"><container><name>c</name><count>1</count><bytes>1</bytes><last_modified>`) {
		t.Fatalf("account xml %s", x.body)
	}
}

// TestAsyncPendingReplay takes the container server down during writes: the
// updates land in async_pending and the updater delivers them later.
func TestAsyncPendingReplay(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	n.contDown.Store(true)
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o1", n.ts(), "x", n.containerHeaders()), 201, "put while container down")
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o2", n.ts(), "y", n.containerHeaders()), 201, "put while container down")
	del := n.containerHeaders()
	del["X-Timestamp"] = n.ts()
	expectStatus(t, do(t, "DELETE", n.objURL+"/sda/0/a/c/o2", del, ""), 204, "delete while container down")
	pendings := func() int {
		c := 0
		filepath.WalkDir(filepath.Join(n.dev, "async_pending"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				c++
			}
			return nil
		})
		return c
	}
	if c := pendings(); c != 3 {
		t.Fatalf("async pendings %d, want 3", c)
	}
	if st := n.obj.UpdateOnce(t.Context()); st.Failed != 3 || st.Sent != 0 {
		t.Fatalf("updater while down: %+v", st)
	}
	n.contDown.Store(false)
	if st := n.obj.UpdateOnce(t.Context()); st.Sent != 3 || st.Failed != 0 {
		t.Fatalf("updater after recovery: %+v", st)
	}
	if c := pendings(); c != 0 {
		t.Fatalf("async pendings left %d", c)
	}
	if got := strings.Join(listing(t, n.contURL+"/sda/1/a/c", nil), ","); got != "o1" {
		t.Fatalf("listing after replay %q", got)
	}
	// The container -> account direction is queued in the container db's
	// reported_* columns and drained by the container updater.
	n.putAccount(t, "a")
	n.acctDown.Store(true)
	n.putContainer(t, "a", "c2")
	if sent, failed := n.cont.UpdateOnce(t.Context()); sent != 0 || failed != 2 {
		t.Fatalf("container updater while account down: %d %d", sent, failed)
	}
	n.acctDown.Store(false)
	if sent, failed := n.cont.UpdateOnce(t.Context()); sent != 2 || failed != 0 {
		t.Fatalf("container updater after recovery: %d %d", sent, failed)
	}
	a := do(t, "HEAD", n.acctURL+"/sda/2/a", nil, "")
	if a.header.Get("X-Account-Container-Count") != "2" || a.header.Get("X-Account-Object-Count") != "1" {
		t.Fatalf("account %v", a.header)
	}
	if sent, _ := n.cont.UpdateOnce(t.Context()); sent != 0 {
		t.Fatalf("nothing left to report, sent %d", sent)
	}
}

func TestAccountServer(t *testing.T) {
	n := newNode(t)
	base := n.acctURL + "/sda/2/AUTH_x"
	expectStatus(t, do(t, "HEAD", base, nil, ""), 404, "missing")
	expectStatus(t, do(t, "PUT", base, map[string]string{"X-Timestamp": n.ts(), "X-Account-Meta-Quota": "10"}, ""), 201, "create")
	expectStatus(t, do(t, "PUT", base, map[string]string{"X-Timestamp": n.ts()}, ""), 202, "again")
	expectStatus(t, do(t, "POST", base, map[string]string{"X-Timestamp": n.ts(), "X-Account-Meta-Owner": "me"}, ""), 204, "post")
	h := do(t, "HEAD", base, nil, "")
	if h.header.Get("X-Account-Meta-Quota") != "10" || h.header.Get("X-Account-Meta-Owner") != "me" || h.header.Get("X-Account-Container-Count") != "0" {
		t.Fatalf("head %v", h.header)
	}
	expectStatus(t, do(t, "GET", base, nil, ""), 204, "empty plain listing")
	expectStatus(t, do(t, "PUT", base+"/c", map[string]string{"X-Put-Timestamp": n.ts(), "X-Delete-Timestamp": "0", "X-Object-Count": "3", "X-Bytes-Used": "30"}, ""), 201, "container report")
	if h := do(t, "HEAD", base, nil, ""); h.header.Get("X-Account-Object-Count") != "3" || h.header.Get("X-Account-Bytes-Used") != "30" {
		t.Fatalf("after report %v", h.header)
	}
	expectStatus(t, do(t, "PUT", base+"/c", map[string]string{"X-Object-Count": "3", "X-Bytes-Used": "30"}, ""), 400, "report without timestamp")
	expectStatus(t, do(t, "DELETE", base, map[string]string{"X-Timestamp": n.ts()}, ""), 204, "delete")
	expectStatus(t, do(t, "HEAD", base, nil, ""), 404, "deleted")
	expectStatus(t, do(t, "PUT", base, map[string]string{"X-Timestamp": n.ts()}, ""), 403, "recreate recently deleted")
}

// TestContainerUpdateOverrideListing checks the path of a static large
// object's listing row, as Swift's: the object server sends the persisted
// container update overrides and the manifest's content type with its
// swift_bytes, and the container listing shows swift_bytes as bytes and
// the ETag's slo_etag as a key of its own, keeping both through a POST
// that changes the content type, while GET shows no swift_bytes.
func TestContainerUpdateOverrideListing(t *testing.T) {
	n := newNode(t)
	n.putAccount(t, "AUTH_t")
	n.putContainer(t, "AUTH_t", "c")
	manifest := `[{"name":"/s/1"}]`
	h := n.containerHeaders()
	h["Content-Type"] = "application/octet-stream;swift_bytes=1048576"
	h["X-Static-Large-Object"] = "True"
	h["X-Object-Sysmeta-Container-Update-Override-Etag"] = md5hex(manifest) + "; slo_etag=abc"
	expectStatus(t, n.putObject(t, "/sda/0/AUTH_t/c/slo", n.ts(), manifest, h), 201, "put manifest")
	h = n.containerHeaders()
	h["Content-Type"] = "text/plain; charset=utf-8"
	expectStatus(t, n.putObject(t, "/sda/0/AUTH_t/c/plain", n.ts(), "xyz", h), 201, "put plain")

	row := func(what string) map[string]any {
		t.Helper()
		r := do(t, "GET", n.contURL+"/sda/1/AUTH_t/c?format=json", nil, "")
		var items []map[string]any
		if err := json.Unmarshal([]byte(r.body), &items); err != nil || len(items) != 2 {
			t.Fatalf("%s: listing %q: %v", what, r.body, err)
		}
		if p := items[0]; p["name"] != "plain" || p["content_type"] != "text/plain;charset=utf-8" || p["bytes"] != 3.0 || p["slo_etag"] != nil {
			t.Fatalf("%s: plain row %v", what, p)
		}
		if used := r.header.Get("X-Container-Bytes-Used"); used != strconv.Itoa(len(manifest)+3) {
			t.Fatalf("%s: bytes used %s, want the manifest's own size counted", what, used)
		}
		return items[1]
	}
	want := func(what string, it map[string]any, ct string) {
		t.Helper()
		if it["bytes"] != 1048576.0 || it["content_type"] != ct || it["hash"] != md5hex(manifest) || it["slo_etag"] != `"abc"` {
			t.Fatalf("%s: slo row %v", what, it)
		}
	}
	want("after put", row("after put"), "application/octet-stream")
	x := do(t, "GET", n.contURL+"/sda/1/AUTH_t/c?format=xml&prefix=slo", nil, "")
	if !strings.Contains(x.body, "<hash>"+md5hex(manifest)+"</hash><bytes>1048576</bytes><content_type>application/octet-stream</content_type>") ||
		strings.Contains(x.body, "slo_etag") {
		t.Fatalf("xml listing %q", x.body)
	}
	if g := do(t, "HEAD", n.objURL+"/sda/0/AUTH_t/c/slo", nil, ""); g.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("manifest head content type %q", g.header.Get("Content-Type"))
	}

	post := n.containerHeaders()
	post["X-Timestamp"], post["Content-Type"] = n.ts(), "image/jpeg"
	expectStatus(t, do(t, "POST", n.objURL+"/sda/0/AUTH_t/c/slo", post, ""), 202, "post content type")
	want("after post", row("after post"), "image/jpeg")
	post = n.containerHeaders()
	post["X-Timestamp"], post["X-Object-Meta-Test"] = n.ts(), "blah"
	expectStatus(t, do(t, "POST", n.objURL+"/sda/0/AUTH_t/c/slo", post, ""), 202, "post metadata")
	want("after metadata post", row("after metadata post"), "image/jpeg")
	if g := do(t, "GET", n.objURL+"/sda/0/AUTH_t/c/slo", nil, ""); g.header.Get("Content-Type") != "image/jpeg" || g.header.Get("X-Object-Meta-Test") != "blah" {
		t.Fatalf("manifest after posts: %v", g.header)
	}
}

// TestReplicationMergeIsAllOrNothing: a merge whose rows include one with
// a bad timestamp is refused whole (400), before the stat row or any
// object row is applied; a good merge lands all its rows.
func TestReplicationMergeIsAllOrNothing(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	merge := func(rows []DBRow) resp {
		b, err := json.Marshal(ReplicateRequest{Op: "merge", Info: DBInfo{
			Account: "a", Container: "c", Put: n.ts(), Delete: "0", StatusChanged: n.ts(),
			Metadata: map[string][2]string{"X-Container-Meta-Color": {"blue", n.ts()}},
		}, Rows: rows})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, MethodReplicate, n.contURL+"/sda/1/a/c", nil, string(b))
	}
	good := DBRow{Name: "good", Created: n.ts(), Size: 1, ContentType: "text/plain", ETag: md5hex("good")}
	r := merge([]DBRow{good, {Name: "bad", Created: "yesterday", Size: 1, ContentType: "text/plain"}})
	expectStatus(t, r, http.StatusBadRequest, "merge with a bad row")
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); len(got) != 0 {
		t.Fatalf("rows applied from a refused merge: %v", got)
	}
	if h := do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, ""); h.header.Get("X-Container-Meta-Color") != "" {
		t.Fatalf("metadata applied from a refused merge: %v", h.header)
	}

	rows := []DBRow{good}
	for i := range 50 {
		rows = append(rows, DBRow{Name: fmt.Sprintf("r%02d", i), Created: n.ts(), Size: 2, ContentType: "text/plain", ETag: md5hex("r")})
	}
	expectStatus(t, merge(rows), http.StatusNoContent, "good merge")
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); len(got) != 51 {
		t.Fatalf("listing after the merge has %d rows, want 51", len(got))
	}
	h := do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != "51" || h.header.Get("X-Container-Bytes-Used") != "101" {
		t.Fatalf("stats after the merge: %v", h.header)
	}
}
