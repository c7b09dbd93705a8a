// Command imagebench measures image upload and download through a
// Glance v2-compatible API (Nimbus or the reference Glance), with the same
// client for both: it logs in with a password, finds the image endpoint in
// the catalog (or takes -image-url), creates an image, uploads -size bytes
// streamed from a generator (nothing is held in memory), waits until the
// image is active, then downloads it -downloads times and checks the size
// and the MD5 the server recorded against what was sent.
//
// The result is one JSON object on stdout (MiB/s up and down; with -pids,
// the server's peak RSS during this run and its CPU time for the upload
// and the downloads); progress on stderr. Any failure exits 1.
//
// Peak RSS is VmHWM, which only ever grows over a process's life. So that
// one server can be measured with several image sizes in turn, imagebench
// first resets the high-water mark of each -pids process to its current
// RSS (writing 5 to /proc/PID/clear_refs, which needs the same user or
// root); "peak_rss_reset" in the result says whether that worked.
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
	"syscall"
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
	// Large socket buffers: with the default 4 KiB the client spends more
	// CPU in system calls than it must, and it shares the cores with the
	// server under test.
	tr := &http.Transport{DisableCompression: true, WriteBufferSize: 256 << 10, ReadBufferSize: 256 << 10}
	c := &client{http: &http.Client{Transport: tr}, token: resp.Header.Get("X-Subject-Token"), base: o.imageURL}
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
	pids := splitPIDs(o.pids)
	reset := len(pids) > 0
	for _, p := range pids {
		if err := os.WriteFile("/proc/"+p+"/clear_refs", []byte("5"), 0); err != nil {
			fmt.Fprintf(os.Stderr, "%s: cannot reset the peak RSS of %s (%v); peak is over the process's life\n", o.label, p, err)
			reset = false
		}
	}
	sum := md5.New()
	fmt.Fprintf(os.Stderr, "%s: uploading %d MiB to %s\n", o.label, o.size>>20, c.base)
	cpu0, ccpu0 := serverCPU(pids), clientCPU()
	start := time.Now()
	resp, err := c.do(ctx, http.MethodPut, "/v2/images/"+id+"/file", "application/octet-stream", newSource(o.size, sum), o.size)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answered := time.Since(start)
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
	cpu1, ccpu1 := serverCPU(pids), clientCPU()
	want := hex.EncodeToString(sum.Sum(nil))
	if shown["checksum"] != want || shown["size"] != float64(o.size) {
		return fmt.Errorf("server recorded checksum %v size %v; sent %s, %d bytes", shown["checksum"], shown["size"], want, o.size)
	}
	fmt.Fprintf(os.Stderr, "%s: upload %.1f MiB/s (%.2f s)\n", o.label, mibps(o.size, up), up.Seconds())

	var downs []float64
	// io.Copy to io.Discard would read in 8 KiB pieces; a client that
	// spends its CPU on that measures itself, not the server.
	buf := make([]byte, 1<<20)
	dcpu0 := serverCPU(pids)
	for i := 0; i < o.downloads; i++ {
		start := time.Now()
		resp, err := c.do(ctx, http.MethodGet, "/v2/images/"+id+"/file", "", nil, -1)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		n, err := drain(resp.Body, buf)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || n != o.size {
			return fmt.Errorf("download: %s, %d of %d bytes: %v", resp.Status, n, o.size, err)
		}
		downs = append(downs, mibps(n, d))
		fmt.Fprintf(os.Stderr, "%s: download %.1f MiB/s (%.2f s)\n", o.label, downs[i], d.Seconds())
	}
	dcpu1 := serverCPU(pids)
	best := 0.0
	for i, d := range downs {
		best = max(best, d)
		downs[i] = round1(d)
	}
	out := map[string]any{"mode": "image", "label": o.label, "size_mib": o.size >> 20,
		"upload_mibps": round1(mibps(o.size, up)), "upload_s": round3(up.Seconds()),
		"upload_answered_s": round3(answered.Seconds()), "client_upload_cpu_s": round3(ccpu1 - ccpu0),
		"download_mibps": round1(best), "downloads_mibps": downs, "checksum_verified": true}
	if len(pids) > 0 {
		hwm, rss, err := memory(pids)
		if err != nil {
			return err
		}
		out["server_peak_rss_mib"], out["server_rss_mib"], out["peak_rss_reset"] = hwm, rss, reset
		out["server_upload_cpu_s"] = round3(cpu1 - cpu0)
		if o.downloads > 0 {
			out["server_download_cpu_s_each"] = round3((dcpu1 - dcpu0) / float64(o.downloads))
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// drain reads r to EOF through buf and counts the bytes.
func drain(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func splitPIDs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// memory sums VmHWM (the peak resident set since the last reset) and
// VmRSS of the given processes, in MiB.
func memory(pids []string) (peak, now float64, err error) {
	var hwm, rss int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + p + "/status")
		if err != nil {
			return 0, 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || (k != "VmHWM" && k != "VmRSS") {
				continue
			}
			n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%s/status %s: %w", p, k, err)
			}
			if k == "VmHWM" {
				hwm += n
			} else {
				rss += n
			}
		}
	}
	return round1(float64(hwm) / 1024), round1(float64(rss) / 1024), nil
}

// clkTck is USER_HZ, the unit of /proc/PID/stat times; 100 on Linux.
const clkTck = 100

// serverCPU is the user+system CPU seconds the processes have used so far
// (a process that cannot be read counts 0).
func serverCPU(pids []string) float64 {
	var ticks int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state is field 3,
		// utime and stime are fields 14 and 15.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return float64(ticks) / clkTck
}

// clientCPU is this process's own user+system CPU seconds.
func clientCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
