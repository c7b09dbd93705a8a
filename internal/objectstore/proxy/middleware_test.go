package proxy

import (
	"archive/tar"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMiddlewaresInInfo(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.Middlewares.DisableBulk = true })
	r := c.do(t, "GET", "/info", "", nil, "")
	var info map[string]any
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"slo", "tempurl", "formpost", "staticweb", "versioned_writes", "account_quotas", "container_quotas"} {
		if _, ok := info[k]; !ok {
			t.Errorf("/info lacks %s", k)
		}
	}
	if _, ok := info["bulk_delete"]; ok {
		t.Error("disabled bulk listed in /info")
	}
	if r := c.do(t, "GET", "/healthcheck", "", nil, ""); r.status != 200 || r.body != "OK" {
		t.Errorf("healthcheck %d %q", r.status, r.body)
	}
	if r := c.do(t, "GET", "/crossdomain.xml", "", nil, ""); !strings.Contains(r.body, `<allow-access-from domain="*" secure="false" />`) {
		t.Errorf("crossdomain %q", r.body)
	}
}

func TestStaticLargeObject(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	seg1, seg2 := strings.Repeat("a", 5), "bcd"
	expect(t, c.do(t, "PUT", "c/s1", ownerToken, nil, seg1), http.StatusCreated, "segment 1")
	expect(t, c.do(t, "PUT", "c/s2", ownerToken, nil, seg2), http.StatusCreated, "segment 2")
	md := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	manifest := fmt.Sprintf(`[{"path":"/c/s1","etag":"%s","size_bytes":5},{"path":"c/s2","etag":null,"size_bytes":null}]`, md(seg1))
	r := c.do(t, "PUT", "c/big?multipart-manifest=put", ownerToken, nil, manifest)
	expect(t, r, http.StatusCreated, "manifest put")
	wantEtag := `"` + md(md(seg1)+md(seg2)) + `"`
	if r.header.Get("Etag") != wantEtag {
		t.Fatalf("manifest etag %q, want %q", r.header.Get("Etag"), wantEtag)
	}
	r = c.do(t, "GET", "c/big", ownerToken, nil, "")
	if r.body != seg1+seg2 || r.header.Get("X-Static-Large-Object") != "True" || r.header.Get("Etag") != wantEtag {
		t.Fatalf("slo get: %d %q %v", r.status, r.body, r.header)
	}
	r = c.do(t, "HEAD", "c/big", ownerToken, nil, "")
	if r.header.Get("Content-Length") != "8" || r.header.Get("Etag") != wantEtag {
		t.Fatalf("slo head: %v", r.header)
	}
	r = c.do(t, "GET", "c/big", ownerToken, map[string]string{"Range": "bytes=3-6"}, "")
	if r.status != http.StatusPartialContent || r.body != "aabc" {
		t.Fatalf("slo range: %d %q", r.status, r.body)
	}
	r = c.do(t, "GET", "c/big", ownerToken, map[string]string{"Range": "bytes=0-0,7-7"}, "")
	if r.status != http.StatusPartialContent || !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") ||
		!strings.Contains(r.body, "Content-Range: bytes 7-7/8\r\n\r\nd\r\n") {
		t.Fatalf("slo multi-range: %d %q %v", r.status, r.body, r.header)
	}
	r = c.do(t, "GET", "c/big?multipart-manifest=get&format=raw", ownerToken, nil, "")
	if !strings.Contains(r.body, `"path":"/c/s1"`) {
		t.Fatalf("raw manifest %q", r.body)
	}
	// Validation, with Swift's texts.
	r = c.do(t, "PUT", "c/bad?multipart-manifest=put", ownerToken, nil, `{"path":"c/s1"}`)
	if r.status != http.StatusBadRequest || r.body != "Manifest must be a list.\n" {
		t.Fatalf("not a list: %d %q", r.status, r.body)
	}
	r = c.do(t, "PUT", "c/bad?multipart-manifest=put", ownerToken, nil, `[{"path":"c/s2","size_bytes":3},{"path":"c/s1","foo":1}]`)
	if r.status != http.StatusBadRequest || r.body != "Index 1: extraneous keys \"foo\"\n" {
		t.Fatalf("extraneous: %d %q", r.status, r.body)
	}
	r = c.do(t, "PUT", "c/bad?multipart-manifest=put", ownerToken, nil, `[{"path":"c/nope"},{"path":"c/s1","size_bytes":4}]`)
	if r.status != http.StatusBadRequest || r.body != "Errors:\nc/nope, 404 Not Found\nc/s1, Size Mismatch\n" {
		t.Fatalf("segment problems: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "PUT", "c/x", ownerToken, map[string]string{"X-Static-Large-Object": "true"}, "z"), http.StatusBadRequest, "reserved header")
	r = c.do(t, "DELETE", "c/big?multipart-manifest=delete", ownerToken, map[string]string{"Accept": "application/json"}, "")
	var del map[string]any
	if err := json.Unmarshal([]byte(r.body), &del); err != nil || del["Number Deleted"] != 3.0 || del["Response Status"] != "200 OK" {
		t.Fatalf("slo delete: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "GET", "c/s1", ownerToken, nil, ""), http.StatusNotFound, "segment deleted")
}

func sign(key, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestTempURL(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "POST", "", ownerToken, map[string]string{"X-Account-Meta-Temp-URL-Key": "secret"}, ""), http.StatusNoContent, "key")
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Container-Meta-Temp-URL-Key": "ckey"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/obj", ownerToken, map[string]string{"X-Object-Meta-Secret": "x"}, "data"), http.StatusCreated, "object")
	exp := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	path := "/v1/" + account + "/c/obj"
	sig := sign("secret", "GET\n"+exp+"\n"+path)
	r := c.do(t, "GET", path+"?temp_url_sig="+sig+"&temp_url_expires="+exp, "", nil, "")
	if r.status != 200 || r.body != "data" || r.header.Get("X-Object-Meta-Secret") != "" ||
		r.header.Get("Content-Disposition") != `attachment; filename="obj"; filename*=UTF-8''obj` {
		t.Fatalf("temp url get: %d %q %v", r.status, r.body, r.header)
	}
	r = c.do(t, "GET", path+"?temp_url_sig="+sig+"&temp_url_expires="+exp+"&inline", "", nil, "")
	if r.header.Get("Content-Disposition") != "inline" {
		t.Fatalf("inline: %v", r.header)
	}
	expect(t, c.do(t, "HEAD", path+"?temp_url_sig="+sig+"&temp_url_expires="+exp, "", nil, ""), 200, "head with a GET signature")
	r = c.do(t, "GET", path+"?temp_url_sig="+sig+"x&temp_url_expires="+exp, "", nil, "")
	if r.status != 401 || r.body != "401 Unauthorized: Temp URL invalid\n" {
		t.Fatalf("bad sig: %d %q", r.status, r.body)
	}
	put := sign("ckey", "PUT\n"+exp+"\n/v1/"+account+"/c/new")
	expect(t, c.do(t, "PUT", "/v1/"+account+"/c/new?temp_url_sig="+put+"&temp_url_expires="+exp, "", nil, "up"), 201, "put with container key")
	prefixSig := sign("secret", "GET\n"+exp+"\nprefix:/v1/"+account+"/c/ne")
	expect(t, c.do(t, "GET", "/v1/"+account+"/c/new?temp_url_sig="+prefixSig+"&temp_url_expires="+exp+"&temp_url_prefix=ne", "", nil, ""), 200, "prefix url")
	old := fmt.Sprint(time.Now().Add(-time.Hour).Unix())
	expect(t, c.do(t, "GET", path+"?temp_url_sig="+sign("secret", "GET\n"+old+"\n"+path)+"&temp_url_expires="+old, "", nil, ""), 401, "expired")
}

func TestFormPost(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "POST", "", ownerToken, map[string]string{"X-Account-Meta-Temp-URL-Key": "secret"}, ""), http.StatusNoContent, "key")
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	path := "/v1/" + account + "/c/up_"
	exp := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	form := func(sig string) (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range map[string]string{"redirect": "http://example.com/done", "max_file_size": "100", "max_file_count": "2", "expires": exp, "signature": sig} {
			_ = mw.WriteField(k, v)
		}
		fw, _ := mw.CreateFormFile("file1", "a.txt")
		_, _ = fw.Write([]byte("hello world"))
		mw.Close()
		return b.String(), mw.FormDataContentType()
	}
	body, ct := form(sign("secret", path+"\nhttp://example.com/done\n100\n2\n"+exp))
	req, _ := http.NewRequest("POST", c.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "http://example.com/done?status=201%20Created&message=" {
		t.Fatalf("form post: %d %v", res.StatusCode, res.Header)
	}
	if r := c.do(t, "GET", "c/up_a.txt", ownerToken, nil, ""); r.body != "hello world" {
		t.Fatalf("uploaded %d %q", r.status, r.body)
	}
	body, ct = form("deadbeef" + strings.Repeat("0", 56))
	r := c.do(t, "POST", path, "", map[string]string{"Content-Type": ct}, body)
	if r.status != 401 || r.body != "FormPost: Invalid Signature" {
		t.Fatalf("bad signature: %d %q", r.status, r.body)
	}
}

func TestStaticWeb(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "site", ownerToken, map[string]string{"X-Container-Read": ".r:*,.rlistings"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "site/index.html", ownerToken, nil, "<h1>hi</h1>"), http.StatusCreated, "index")
	expect(t, c.do(t, "PUT", "site/404err.html", ownerToken, nil, "missing"), http.StatusCreated, "error page")
	expect(t, c.do(t, "POST", "site", ownerToken, map[string]string{"X-Container-Meta-Web-Index": "index.html", "X-Container-Meta-Web-Error": "err.html"}, ""), http.StatusNoContent, "web meta")
	r := c.do(t, "GET", "/v1/"+account+"/site/", "", nil, "")
	if r.status != 200 || r.body != "<h1>hi</h1>" {
		t.Fatalf("index: %d %q", r.status, r.body)
	}
	r = c.do(t, "GET", "/v1/"+account+"/site/nothere", "", nil, "")
	if r.status != 404 || r.body != "missing" {
		t.Fatalf("error page: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "POST", "site", ownerToken, map[string]string{"X-Remove-Container-Meta-Web-Index": "x", "X-Container-Meta-Web-Listings": "true", "X-Container-Meta-Web-Listings-Css": "listings.css"}, ""), http.StatusNoContent, "listings")
	r = c.do(t, "GET", "/v1/"+account+"/site/", ownerToken, map[string]string{"X-Web-Mode": "true"}, "")
	if r.status != 200 || !strings.Contains(r.body, "index.html") || !strings.Contains(r.body, `<link rel="stylesheet" type="text/css" href="listings.css" />`) {
		t.Fatalf("listing: %d %q", r.status, r.body)
	}
}

func TestBulk(t *testing.T) {
	c := newCluster(t, nil)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range []string{"cont/a", "cont/dir/b"} {
		_ = tw.WriteHeader(&tar.Header{Name: f, Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("xyz"))
	}
	tw.Close()
	r := c.do(t, "PUT", "/v1/"+account+"?extract-archive=tar", ownerToken, map[string]string{"Accept": "application/json"}, b.String())
	var out map[string]any
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || out["Number Files Created"] != 2.0 || out["Response Status"] != "201 Created" {
		t.Fatalf("extract: %d %q", r.status, r.body)
	}
	if r.header.Get("Content-Length") != "" {
		t.Fatalf("bulk response not streamed: %v", r.header)
	}
	r = c.do(t, "DELETE", "/v1/"+account+"?bulk-delete", ownerToken, nil, "cont/a\ncont/dir%2Fb\ncont/nope\ncont\n")
	if r.status != 200 || !strings.Contains(r.body, "Number Deleted: 3\nNumber Not Found: 1\n") {
		t.Fatalf("bulk delete: %d %q", r.status, r.body)
	}
}

func TestVersionedWrites(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "old", ownerToken, nil, ""), http.StatusCreated, "versions container")
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Versions-Location": "old"}, ""), http.StatusCreated, "container")
	if r := c.do(t, "HEAD", "c", ownerToken, nil, ""); r.header.Get("X-Versions-Location") != "old" {
		t.Fatalf("versions location not shown: %v", r.header)
	}
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "v1"), http.StatusCreated, "v1")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "v2"), http.StatusCreated, "v2")
	if r := c.do(t, "GET", "old?prefix=001o/", ownerToken, nil, ""); strings.Count(r.body, "\n") != 1 {
		t.Fatalf("versions: %q", r.body)
	}
	expect(t, c.do(t, "DELETE", "c/o", ownerToken, nil, ""), http.StatusNoContent, "delete restores")
	if r := c.do(t, "GET", "c/o", ownerToken, nil, ""); r.body != "v1" {
		t.Fatalf("restored %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "PUT", "h", ownerToken, map[string]string{"X-Versions-Location": "a", "X-History-Location": "b"}, ""), http.StatusBadRequest, "both modes")
}

func TestQuotas(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Container-Meta-Quota-Bytes": "5", "X-Container-Meta-Quota-Count": "2"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/a", ownerToken, nil, "123"), http.StatusCreated, "within quota")
	r := c.do(t, "PUT", "c/b", ownerToken, nil, "123")
	if r.status != http.StatusRequestEntityTooLarge || r.body != "Upload exceeds quota." {
		t.Fatalf("container bytes quota: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "POST", "c", ownerToken, map[string]string{"X-Container-Meta-Quota-Bytes": "x"}, ""), http.StatusBadRequest, "bad quota")
	expect(t, c.do(t, "POST", "", ownerToken, map[string]string{"X-Account-Meta-Quota-Bytes": "10"}, ""), http.StatusForbidden, "owner sets account quota")
	expect(t, c.do(t, "POST", "", resellerToken, map[string]string{"X-Account-Meta-Quota-Bytes": "4"}, ""), http.StatusNoContent, "reseller sets account quota")
	expect(t, c.do(t, "PUT", "d", ownerToken, nil, ""), http.StatusCreated, "container d")
	expect(t, c.do(t, "PUT", "d/big", ownerToken, nil, "12345"), http.StatusRequestEntityTooLarge, "account quota")
}

func TestCORS(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Container-Meta-Access-Control-Allow-Origin": "http://a.example", "X-Container-Meta-Access-Control-Max-Age": "60"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, map[string]string{"X-Object-Meta-Color": "red"}, "x"), http.StatusCreated, "object")
	r := c.do(t, "OPTIONS", "c/o", "", map[string]string{"Origin": "http://a.example", "Access-Control-Request-Method": "GET"}, "")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://a.example" || r.header.Get("Access-Control-Max-Age") != "60" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	expect(t, c.do(t, "OPTIONS", "c/o", "", map[string]string{"Origin": "http://b.example", "Access-Control-Request-Method": "GET"}, ""), 401, "other origin")
	r = c.do(t, "GET", "c/o", ownerToken, map[string]string{"Origin": "http://a.example"}, "")
	if r.header.Get("Access-Control-Allow-Origin") != "http://a.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "x-object-meta-color") {
		t.Fatalf("cors get: %v", r.header)
	}
}
