package dataplane

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestGuestMetadataSurvivesHalfClose sends a request the way the guest
// image's agent does (busybox nc: the request, then its side of the
// connection closed) to a handler whose lookups take a while, as the
// networking calls behind a metadata answer do on a busy host. The answer
// must still come; before, Go's server cancelled the request's context
// at the half-close and the lookups failed.
func TestGuestMetadataSurvivesHalfClose(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			http.Error(w, "lookup: "+r.Context().Err().Error(), http.StatusInternalServerError)
			return
		}
		if r.Header.Get(MetadataRouterHeader) != "r1" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			http.Error(w, "headers not set", http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("meta"))
	})
	srv := httptest.NewServer(guestMetadataHandler(slow, "r1"))
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /openstack/latest/meta_data.json HTTP/1.0\r\nHost: 169.254.169.254\r\nX-Forwarded-For: 10.0.0.66\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer after a half-close: %v", err)
	}
	defer resp.Body.Close()
	body := new(strings.Builder)
	_, _ = bufio.NewReader(resp.Body).WriteTo(body)
	if resp.StatusCode != http.StatusOK || body.String() != "meta" {
		t.Fatalf("answer after a half-close: %d %q", resp.StatusCode, body.String())
	}
}
