// Command coldstart times `nimbus up` from exec to the first successful
// token issue, on an empty data dir (first start: bootstrap included) and
// again on the same, now bootstrapped, dir; and reads the idle resident
// memory (VmRSS) of the process once it has settled.
//
//	go run ./bench/coldstart -nimbus bin/nimbus -runs 5
//	go run ./bench/coldstart -rss PID     # RSS/PSS of PID and its descendants
//
// The first token is a project-scoped password login of the bootstrap
// admin, polled every 2 ms from the moment the identity URL is printed, so
// it includes one full bcrypt verification (the in-memory verification
// cache is empty in a new process). Each run's figures are printed to
// stderr; one JSON object with the medians goes to stdout.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	nimbus := flag.String("nimbus", "bin/nimbus", "nimbus binary")
	runs := flag.Int("runs", 5, "runs of (empty start, bootstrapped start)")
	settle := flag.Duration("settle", 5*time.Second, "idle time before reading RSS")
	rssOf := flag.Int("rss", 0, "only print RSS/PSS (KiB) of this PID and its descendants as JSON, then exit")
	label := flag.String("label", "nimbus", "name of the target in the JSON")
	phase := flag.String("phase", "", "with -rss: when the memory was read (e.g. idle, after-load)")
	flag.Parse()
	if *rssOf != 0 {
		m := treeMemory(*rssOf)
		if m.Procs == 0 {
			fatalf("no process %d", *rssOf)
		}
		m.Label, m.Phase, m.Mode = *label, *phase, "rss"
		emit(m)
		return
	}
	bin, err := filepath.Abs(*nimbus)
	if err != nil {
		fatalf("%v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		fatalf("%v (make build)", err)
	}

	var emptyUp, emptyTok, bootUp, bootTok, rssEmpty, rssBoot []float64
	for i := 1; i <= *runs; i++ {
		dir, err := os.MkdirTemp("", "nimbus-coldstart-")
		if err != nil {
			fatalf("%v", err)
		}
		for _, bootstrapped := range []bool{false, true} {
			m, err := measure(bin, dir, *settle)
			if err != nil {
				os.RemoveAll(dir)
				fatalf("run %d (bootstrapped=%v): %v", i, bootstrapped, err)
			}
			kind := "empty data dir"
			if bootstrapped {
				kind = "bootstrapped  "
			}
			fmt.Fprintf(os.Stderr, "run %d, %s: \"up\" printed after %6.1f ms, first token after %6.1f ms (nimbus says up in %s); idle VmRSS after %s: %.1f MiB\n",
				i, kind, m.upMS, m.tokenMS, m.selfReported, *settle, float64(m.rssKB)/1024)
			if bootstrapped {
				bootUp, bootTok, rssBoot = append(bootUp, m.upMS), append(bootTok, m.tokenMS), append(rssBoot, float64(m.rssKB))
			} else {
				emptyUp, emptyTok, rssEmpty = append(emptyUp, m.upMS), append(emptyTok, m.tokenMS), append(rssEmpty, float64(m.rssKB))
			}
		}
		os.RemoveAll(dir)
	}
	out := map[string]any{
		"mode":                        "coldstart",
		"label":                       *label,
		"runs":                        *runs,
		"settle_s":                    settle.Seconds(),
		"empty_up_ms_median":          median(emptyUp),
		"empty_first_token_ms_median": median(emptyTok),
		"empty_first_token_ms_max":    slices.Max(emptyTok),
		"boot_up_ms_median":           median(bootUp),
		"boot_first_token_ms_median":  median(bootTok),
		"boot_first_token_ms_max":     slices.Max(bootTok),
		"idle_rss_kib_median_empty":   median(rssEmpty),
		"idle_rss_kib_median_boot":    median(rssBoot),
		"time":                        time.Now().UTC().Format(time.RFC3339),
	}
	emit(out)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "coldstart: "+format+"\n", args...)
	os.Exit(1)
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type measurement struct {
	upMS, tokenMS float64
	selfReported  string
	rssKB         int
}

// measure starts `nimbus up` on dir, times the first token, waits settle,
// reads VmRSS and stops the process (SIGTERM to its PID, SIGKILL after 10 s).
func measure(bin, dir string, settle time.Duration) (m measurement, err error) {
	cmd := exec.Command(bin, "up", "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "NIMBUS_IDENTITY_PORT=0", "NIMBUS_IMAGE_PORT=0", "NIMBUS_NETWORK_PORT=0", "NIMBUS_COMPUTE_PORT=0", "NIMBUS_METADATA_PORT=0", "NIMBUS_NOVNCPROXY_PORT=0", "NIMBUS_SERIALPROXY_PORT=0", "NIMBUS_OBJECT_PORT=0", "NIMBUS_STORAGE_OBJECT_PORT=0", "NIMBUS_STORAGE_CONTAINER_PORT=0", "NIMBUS_STORAGE_ACCOUNT_PORT=0", "NIMBUS_SEED=0", "NIMBUS_NATS_PORT=0")
	logf, err := os.Create(filepath.Join(dir, "nimbus.log"))
	if err != nil {
		return m, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive us
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return m, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return m, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var identity string
	timeout := time.After(30 * time.Second)
	for identity == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				return m, fmt.Errorf("nimbus exited before printing its identity URL (log: %s)", logf.Name())
			}
			if rest, found := strings.CutPrefix(l.text, "Nimbus is up in "); found {
				m.upMS = float64(l.at.Sub(t0).Microseconds()) / 1000
				m.selfReported = strings.TrimSuffix(rest, ".")
			}
			if rest, found := strings.CutPrefix(strings.TrimSpace(l.text), "identity:"); found {
				identity = strings.TrimSpace(rest)
			}
		case err := <-exited:
			exited <- err
			return m, fmt.Errorf("nimbus exited: %v", err)
		case <-timeout:
			return m, errors.New("no identity URL after 30 s")
		}
	}
	go func() {
		for range lines {
		}
	}()

	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for {
		if time.Now().After(deadline) {
			return m, fmt.Errorf("no token after 30 s: %v", lastErr)
		}
		if lastErr = adminToken(client, identity, filepath.Join(dir, "data", "admin-password")); lastErr == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	m.tokenMS = float64(time.Since(t0).Microseconds()) / 1000

	time.Sleep(settle)
	m.rssKB = statusKB(cmd.Process.Pid, "VmRSS")
	return m, nil
}

func adminToken(c *http.Client, identity, pwFile string) error {
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return err
	}
	body := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":%q}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}`,
		strings.TrimSpace(string(pw)))
	resp, err := c.Post(strings.TrimRight(identity, "/")+"/auth/tokens", "application/json", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Subject-Token") == "" {
		return fmt.Errorf("token issue: HTTP %d", resp.StatusCode)
	}
	return nil
}

// statusKB reads a "Name:   N kB" field of /proc/PID/status.
func statusKB(pid int, field string) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// memory is the resident memory of a process tree. RSS counts shared pages
// once per process; PSS (from smaps_rollup) splits them among the sharers,
// so PSS is the fair total for a forking server such as uwsgi.
type memory struct {
	Mode   string `json:"mode"`
	Label  string `json:"label"`
	Phase  string `json:"phase,omitempty"`
	PID    int    `json:"pid"`
	Procs  int    `json:"procs"`
	RSSKiB int    `json:"rss_kib"`
	PSSKiB int    `json:"pss_kib"`
	HWMKiB int    `json:"hwm_kib"`
}

func treeMemory(root int) memory {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				ppid, _ := strconv.Atoi(f[1])
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	m := memory{PID: root}
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		rss := statusKB(p, "VmRSS")
		if rss == 0 && statusKB(p, "VmSize") == 0 {
			continue // gone, or a kernel thread
		}
		m.Procs++
		m.RSSKiB += rss
		m.HWMKiB += statusKB(p, "VmHWM")
		m.PSSKiB += pssKB(p)
		stack = append(stack, children[p]...)
	}
	return m
}

func pssKB(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "Pss:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return 0
}
