// Command imagebench measures image upload and download through a
// Glance v2-compatible API (Nimbus or the reference Glance), with the same
// client for both: it logs in with a password, finds the image endpoint in
// the catalog (or takes -image-url), creates an image, uploads -size bytes
// streamed from a generator (nothing is held in memory), waits until the
// image is active, then downloads it -downloads times and checks the size
// and the MD5 the server recorded against what was sent.
//
// The result is one JSON object on stdout (MiB/s up and down, and the
// server's peak RSS when -pids names its processes); progress on stderr.
// Any failure exits 1.
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

type options struct {
	authURL, user, password, project, domain string
	imageURL                                 string
	size                                     int64
	downloads                                int
	label                                    string
	pids                                     string
	keep                                     bool
}

func main() {
	var o options
	flag.StringVar(&o.authURL, "auth-url", "", "identity v3 URL, e.g. http://127.0.0.1:5000/v3")
	flag.StringVar(&o.user, "user", "admin", "user name")
	flag.StringVar(&o.password, "password", "", "password")
	flag.StringVar(&o.project, "project", "admin", "project name")
	flag.StringVar(&o.domain, "domain", "Default", "user and project domain name")
	flag.StringVar(&o.imageURL, "image-url", "", "image API base URL (default: from the catalog)")
	flag.Int64Var(&o.size, "size", 1<<30, "image size in bytes")
	flag.IntVar(&o.downloads, "downloads", 2, "downloads to time (the best is reported, and each one)")
	flag.StringVar(&o.label, "label", "nimbus", "label for the result")
	flag.StringVar(&o.pids, "pids", "", "comma-separated server PIDs whose peak RSS (VmHWM) to report")
	flag.BoolVar(&o.keep, "keep", false, "keep the image afterwards")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "imagebench:", err)
		os.Exit(1)
	}
}

// client is a tiny Glance client: token plus base URL.
type client struct {
	http  *http.Client
	token string
	base  string
}

func (c *client) do(ctx context.Context, method, path, ctype string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Auth-Token", c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	return c.http.Do(req)
}

func (c *client) json(ctx context.Context, method, path string, in any, want int) (map[string]any, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, "application/json", body, -1)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return out, nil
}

// login gets a project-scoped token and the image endpoint.
func login(ctx context.Context, o options) (*client, error) {
	scope := map[string]any{"project": map[string]any{"name": o.project, "domain": map[string]any{"name": o.domain}}}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": o.user, "password": o.password, "domain": map[string]any{"name": o.domain}}}},
		"scope": scope,
	}}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(o.authURL, "/")+"/auth/tokens", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("login: %s: %s", resp.Status, msg)
	}
	var tok struct {
		Token struct {
			Catalog []struct {
				Type      string `json:"type"`
				Endpoints []struct {
					Interface string `json:"interface"`
					URL       string `json:"url"`
				} `json:"endpoints"`
			} `json:"catalog"`
		} `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	c := &client{http: &http.Client{Transport: &http.Transport{DisableCompression: true}}, token: resp.Header.Get("X-Subject-Token"), base: o.imageURL}
	for _, s := range tok.Token.Catalog {
		for _, e := range s.Endpoints {
			if c.base == "" && s.Type == "image" && e.Interface == "public" {
				c.base = e.URL
			}
		}
	}
	if c.base == "" {
		return nil, errors.New("no public image endpoint in the catalog")
	}
	c.base = strings.TrimSuffix(c.base, "/")
	return c, nil
}

// source produces size pseudo-random bytes without holding them: a 4 MiB
// random block, each repetition perturbed so no two blocks are equal (a
// store that deduplicates or compresses gains nothing).
type source struct {
	block []byte
	left  int64
	n     uint64
	off   int
	md5   io.Writer
}

func newSource(size int64, sum io.Writer) *source {
	b := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return &source{block: b, left: size, md5: sum}
}

func (s *source) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if s.off == len(s.block) {
		s.off = 0
		s.n++
		copy(s.block, strconv.FormatUint(s.n, 10)) // a distinct block each time round
	}
	n := copy(p, s.block[s.off:])
	if int64(n) > s.left {
		n = int(s.left)
	}
	s.off += n
	s.left -= int64(n)
	s.md5.Write(p[:n])
	return n, nil
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

func run(ctx context.Context, o options) error {
	c, err := login(ctx, o)
	if err != nil {
		return err
	}
	im, err := c.json(ctx, http.MethodPost, "/v2/images", map[string]any{
		"name": "imagebench", "disk_format": "raw", "container_format": "bare"}, http.StatusCreated)
	if err != nil {
		return err
	}
	id, _ := im["id"].(string)
	if !o.keep {
		defer c.json(context.WithoutCancel(ctx), http.MethodDelete, "/v2/images/"+id, nil, http.StatusNoContent)
	}
	sum := md5.New()
	fmt.Fprintf(os.Stderr, "%s: uploading %d MiB to %s\n", o.label, o.size>>20, c.base)
	start := time.Now()
	resp, err := c.do(ctx, http.MethodPut, "/v2/images/"+id+"/file", "application/octet-stream", newSource(o.size, sum), o.size)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("upload: %s: %s", resp.Status, msg)
	}
	// Glance may answer before the image is active; time until it is.
	var shown map[string]any
	for {
		if shown, err = c.json(ctx, http.MethodGet, "/v2/images/"+id, nil, http.StatusOK); err != nil {
			return err
		}
		if shown["status"] == "active" {
			break
		}
		if time.Since(start) > 30*time.Minute || shown["status"] == "killed" {
			return fmt.Errorf("image stays %v", shown["status"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	up := time.Since(start)
	want := hex.EncodeToString(sum.Sum(nil))
	if shown["checksum"] != want || shown["size"] != float64(o.size) {
		return fmt.Errorf("server recorded checksum %v size %v; sent %s, %d bytes", shown["checksum"], shown["size"], want, o.size)
	}
	fmt.Fprintf(os.Stderr, "%s: upload %.1f MiB/s (%.2f s)\n", o.label, mibps(o.size, up), up.Seconds())

	var downs []float64
	for i := 0; i < o.downloads; i++ {
		start := time.Now()
		resp, err := c.do(ctx, http.MethodGet, "/v2/images/"+id+"/file", "", nil, -1)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || n != o.size {
			return fmt.Errorf("download: %s, %d of %d bytes: %v", resp.Status, n, o.size, err)
		}
		downs = append(downs, mibps(n, d))
		fmt.Fprintf(os.Stderr, "%s: download %.1f MiB/s (%.2f s)\n", o.label, downs[i], d.Seconds())
	}
	best := 0.0
	for _, d := range downs {
		best = max(best, d)
	}
	out := map[string]any{"mode": "image", "label": o.label, "size_mib": o.size >> 20,
		"upload_mibps": round1(mibps(o.size, up)), "download_mibps": round1(best), "downloads_mibps": downs,
		"checksum_verified": true}
	if o.pids != "" {
		hwm, err := peakRSS(o.pids)
		if err != nil {
			return err
		}
		out["server_peak_rss_mib"] = hwm
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// peakRSS sums VmHWM (the peak resident set) of the given processes.
func peakRSS(pids string) (float64, error) {
	var kb int64
	for _, p := range strings.Split(pids, ",") {
		b, err := os.ReadFile("/proc/" + strings.TrimSpace(p) + "/status")
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				if err != nil {
					return 0, err
				}
				kb += n
			}
		}
	}
	return round1(float64(kb) / 1024), nil
}
