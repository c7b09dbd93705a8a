package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkObjectPut4K measures durable 4 KiB PUTs (fsync of file and
// directory included) over loopback HTTP, without container updates.
func BenchmarkObjectPut4K(b *testing.B) {
	n := newNode(b)
	body := bytes.Repeat([]byte("x"), 4096)
	client := &http.Client{}
	b.SetBytes(4096)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/sda/%d/a/c/o%d", n.objURL, i%64, i), bytes.NewReader(body))
		req.Header.Set("X-Timestamp", n.ts())
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkObjectGet4K measures 4 KiB GETs over loopback HTTP.
func BenchmarkObjectGet4K(b *testing.B) {
	n := newNode(b)
	body := bytes.Repeat([]byte("x"), 4096)
	const objects = 256
	for i := range objects {
		n.putObject(b, fmt.Sprintf("/sda/%d/a/c/o%d", i%64, i), n.ts(), string(body), nil)
	}
	client := &http.Client{}
	b.SetBytes(4096)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		res, err := client.Get(fmt.Sprintf("%s/sda/%d/a/c/o%d", n.objURL, i%objects%64, i%objects))
		if err != nil {
			b.Fatal(err)
		}
		nb, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || nb != 4096 {
			b.Fatalf("status %d, %d bytes", res.StatusCode, nb)
		}
	}
}

// runParallel16 runs op at concurrency 16 (8 goroutines per GOMAXPROCS on
// the 2-core CI machine) with a sequence number shared by all goroutines,
// over a client that keeps enough idle connections.
func runParallel16(b *testing.B, op func(client *http.Client, i int64) error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.SetBytes(4096)
	b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(client, seq.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkObjectPut4KParallel16 runs 4 KiB PUTs at concurrency 16, where
// concurrent fsyncs share journal commits.
func BenchmarkObjectPut4KParallel16(b *testing.B) {
	n := newNode(b)
	body := bytes.Repeat([]byte("x"), 4096)
	runParallel16(b, func(client *http.Client, i int64) error {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/sda/%d/a/c/o%d", n.objURL, i%64, i), bytes.NewReader(body))
		req.Header.Set("X-Timestamp", n.ts())
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
}

// BenchmarkObjectGet4KParallel16 runs 4 KiB GETs at concurrency 16.
func BenchmarkObjectGet4KParallel16(b *testing.B) {
	n := newNode(b)
	body := string(bytes.Repeat([]byte("x"), 4096))
	const objects = 256
	for i := range objects {
		n.putObject(b, fmt.Sprintf("/sda/%d/a/c/o%d", i%64, i), n.ts(), body, nil)
	}
	runParallel16(b, func(client *http.Client, i int64) error {
		i %= objects
		res, err := client.Get(fmt.Sprintf("%s/sda/%d/a/c/o%d", n.objURL, i%64, i))
		if err != nil {
			return err
		}
		nb, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || nb != 4096 {
			return fmt.Errorf("status %d, %d bytes", res.StatusCode, nb)
		}
		return nil
	})
}

// BenchmarkContainerUpdateParallel16 sends object rows to one container
// at concurrency 16, as the object servers do during uploads into one
// container; the rows are group-committed.
func BenchmarkContainerUpdateParallel16(b *testing.B) {
	n := newNode(b)
	n.putContainer(b, "a", "c")
	runParallel16(b, func(client *http.Client, i int64) error {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/sda/1/a/c/o%d", n.contURL, i), http.NoBody)
		req.Header.Set("X-Timestamp", n.ts())
		req.Header.Set("X-Size", "4096")
		req.Header.Set("X-Content-Type", "application/octet-stream")
		req.Header.Set("X-Etag", "d41d8cd98f00b204e9800998ecf8427e")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
}
