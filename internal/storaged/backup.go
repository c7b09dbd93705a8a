package storaged

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Backup copies node, as of the moment the call starts, into the qcow2
// file target, which must exist with the node's virtual size. Writes
// that clients make meanwhile go to node only (blockdev-backup's
// copy-before-write), so the copy is crash-consistent while the volume
// stays in use. It returns when the job has completed.
func (d *Daemon) Backup(ctx context.Context, node, target string) (err error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	tnode := "bk" + hex.EncodeToString(suffix)
	job := "job-" + tnode
	if err := d.AddQcow2(ctx, tnode, target, false); err != nil {
		return fmt.Errorf("backup %s: %w", node, err)
	}
	defer func() {
		// A job that outlived us (ctx cancelled) must not keep the
		// target open.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err != nil {
			_ = d.execute(dctx, "job-cancel", map[string]any{"id": job}, nil)
			d.waitJobGone(dctx, job)
		}
		if derr := d.DelNode(dctx, tnode); derr != nil && err == nil {
			err = fmt.Errorf("backup %s: %w", node, derr)
		}
	}()
	events, stop := d.waitFor("BLOCK_JOB_COMPLETED")
	defer stop()
	args := map[string]any{"job-id": job, "device": node, "target": tnode, "sync": "full", "auto-dismiss": false}
	if err := d.execute(ctx, "blockdev-backup", args, nil); err != nil {
		return fmt.Errorf("backup %s: %w", node, err)
	}
	// The event says when; query-jobs (the job is kept until dismissed)
	// says how, and is what counts if the event was missed.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		st, jerr, err := d.jobStatus(ctx, job)
		if err != nil {
			return fmt.Errorf("backup %s: %w", node, err)
		}
		if st == "concluded" || st == "" {
			_ = d.execute(ctx, "job-dismiss", map[string]any{"id": job}, nil)
			if st == "" {
				return fmt.Errorf("backup %s: job %s vanished", node, job)
			}
			if jerr != "" {
				return fmt.Errorf("backup %s: %s", node, jerr)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("backup %s: %w", node, ctx.Err())
		case <-events:
		case <-tick.C:
		}
	}
}

// jobStatus is a job's status and error as query-jobs reports them;
// status "" when the daemon has no such job.
func (d *Daemon) jobStatus(ctx context.Context, id string) (status, jobErr string, err error) {
	var jobs []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := d.execute(ctx, "query-jobs", nil, &jobs); err != nil {
		return "", "", fmt.Errorf("query jobs: %w", err)
	}
	for _, j := range jobs {
		if j.ID == id {
			return j.Status, j.Error, nil
		}
	}
	return "", "", nil
}

// waitJobGone dismisses a cancelled job once it has concluded.
func (d *Daemon) waitJobGone(ctx context.Context, id string) {
	for ctx.Err() == nil {
		st, _, err := d.jobStatus(ctx, id)
		if err != nil || st == "" {
			return
		}
		if st == "concluded" {
			_ = d.execute(ctx, "job-dismiss", map[string]any{"id": id}, nil)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CancelJobs ends every block job of the daemon: the jobs of an agent
// that died mid-operation, whose results nobody will use.
func (d *Daemon) CancelJobs(ctx context.Context) error {
	var jobs []struct {
		ID string `json:"id"`
	}
	if err := d.execute(ctx, "query-jobs", nil, &jobs); err != nil {
		return fmt.Errorf("query jobs: %w", err)
	}
	for _, j := range jobs {
		_ = d.execute(ctx, "job-cancel", map[string]any{"id": j.ID}, nil)
		d.waitJobGone(ctx, j.ID)
	}
	return nil
}
