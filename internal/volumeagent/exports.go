package volumeagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/atomicfile"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// export is one volume served to one compute host: its own NBD export
// name and its own TLS-PSK identity and key, so ending an attachment
// revokes exactly its key. The agent persists them, so a restarted agent
// answers a repeated export with the same connection and can rebuild a
// restarted daemon's exports under the same names.
type export struct {
	VolumeID  string `json:"volume_id"`
	Initiator string `json:"initiator"`
	Name      string `json:"name"`
	Identity  string `json:"identity"`
	Key       string `json:"key"`
	ReadOnly  bool   `json:"read_only,omitempty"`
}

// daemonID is the export's id inside the storage daemon, derived from its
// name (QEMU ids must start with a letter).
func (e export) daemonID() string { return "x-" + e.Name }

// nodeName is the storage daemon's block node of a volume: QEMU caps node
// names at 31 characters, so it takes 24 of the id's 32 hex digits.
func nodeName(volumeID string) string {
	return "v" + strings.ReplaceAll(volumeID, "-", "")[:24]
}

func (a *Agent) exportsPath() string { return filepath.Join(a.cfg.StateDir, "exports.json") }

// loadExports reads the persisted exports; none when the file is missing.
func (a *Agent) loadExports() error {
	b, err := os.ReadFile(a.exportsPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read exports: %w", err)
	}
	var list []export
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("read exports %s: %w", a.exportsPath(), err)
	}
	a.mu.Lock()
	a.exports = list
	a.mu.Unlock()
	return nil
}

// saveExports persists the exports, then makes their keys the storage
// daemon's whole key set; called with a.mu held.
func (a *Agent) saveExportsLocked() error {
	b, err := json.MarshalIndent(a.exports, "", "  ")
	if err != nil {
		return fmt.Errorf("save exports: %w", err)
	}
	if err := atomicfile.Write(a.exportsPath(), b, 0o600); err != nil {
		return fmt.Errorf("save exports: %w", err)
	}
	keys := make(map[string]string, len(a.exports))
	for _, e := range a.exports {
		keys[e.Identity] = e.Key
	}
	return a.qsd.SetKeys(keys)
}

// exportsOf lists the volume's exports (all of them for initiator "").
func (a *Agent) exportsOf(volumeID, initiator string) []export {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []export
	for _, e := range a.exports {
		if e.VolumeID == volumeID && (initiator == "" || e.Initiator == initiator) {
			out = append(out, e)
		}
	}
	return out
}

// conn answers an export call.
func (a *Agent) conn(ctx context.Context, req agentproto.ConnRequest) (agentproto.ConnReply, error) {
	if !validID(req.VolumeID) {
		return agentproto.ConnReply{}, fmt.Errorf("invalid volume id %q", req.VolumeID)
	}
	unlock, err := a.lock(ctx, req.VolumeID)
	if err != nil {
		return agentproto.ConnReply{}, err
	}
	defer unlock()
	switch req.Op {
	case agentproto.OpExport:
		c, err := a.exportVolume(ctx, req.VolumeID, req.Initiator, req.ReadOnly)
		if err != nil {
			return agentproto.ConnReply{}, fmt.Errorf("export volume %s to %s: %w", req.VolumeID, req.Initiator, err)
		}
		return agentproto.ConnReply{Conn: c}, nil
	case agentproto.OpUnexport:
		if err := a.unexportVolume(ctx, req.VolumeID, req.Initiator); err != nil {
			return agentproto.ConnReply{}, fmt.Errorf("unexport volume %s from %q: %w", req.VolumeID, req.Initiator, err)
		}
		return agentproto.ConnReply{}, nil
	}
	return agentproto.ConnReply{}, fmt.Errorf("unknown connection operation %q", req.Op)
}

// exportVolume serves the volume to initiator, or answers the export it
// already has; called with the volume locked.
func (a *Agent) exportVolume(ctx context.Context, volumeID, initiator string, readOnly bool) (*hypervisor.VolumeConn, error) {
	if initiator == "" {
		return nil, errors.New("no initiator")
	}
	if !exists(a.volumePath(volumeID)) {
		return nil, errors.New("this host has no such volume")
	}
	if old := a.exportsOf(volumeID, initiator); len(old) > 0 {
		if old[0].ReadOnly == readOnly {
			if err := a.serve(ctx, old[0]); err != nil {
				return nil, err
			}
			return a.connOf(old[0]), nil
		}
		// The access mode changed: a new export with a new key.
		if err := a.unexportVolume(ctx, volumeID, initiator); err != nil {
			return nil, err
		}
	}
	suffix := make([]byte, 4)
	key := make([]byte, 32)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	e := export{VolumeID: volumeID, Initiator: initiator, Name: volumeID + "-" + hex.EncodeToString(suffix),
		Key: hex.EncodeToString(key), ReadOnly: readOnly}
	e.Identity = "vol-" + e.Name
	// Recorded first: an export the daemon has but the record lacks
	// would be invisible to a restarted agent, the other way round it is
	// re-added (or dropped) by reconciliation.
	a.mu.Lock()
	a.exports = append(a.exports, e)
	err := a.saveExportsLocked()
	a.mu.Unlock()
	if err == nil {
		err = a.serve(ctx, e)
	}
	if err != nil {
		if uerr := a.unexportVolume(ctx, volumeID, initiator); uerr != nil {
			a.log.Warn("undo a failed export", "volume", volumeID, "err", uerr)
		}
		return nil, err
	}
	a.log.Info("volume exported", "volume", volumeID, "initiator", initiator, "export", e.Name)
	return a.connOf(e), nil
}

// serve makes the storage daemon serve e: the volume's node, then the
// export. Both steps are no-ops when already done.
func (a *Agent) serve(ctx context.Context, e export) error {
	if err := a.qsd.AddQcow2(ctx, nodeName(e.VolumeID), a.volumePath(e.VolumeID), false); err != nil {
		return err
	}
	return a.qsd.AddExport(ctx, e.daemonID(), nodeName(e.VolumeID), e.Name, !e.ReadOnly)
}

func (a *Agent) connOf(e export) *hypervisor.VolumeConn {
	return &hypervisor.VolumeConn{VolumeID: e.VolumeID, Host: a.cfg.NBDAddress, Port: a.cfg.NBDPort, Export: e.Name,
		PSKIdentity: e.Identity, PSKKey: e.Key, ReadOnly: e.ReadOnly, Discard: true}
}

// unexportVolume ends the volume's exports to initiator ("" for all):
// their clients are disconnected, their keys revoked, and the volume's
// node closed when no export is left. Called with the volume locked.
func (a *Agent) unexportVolume(ctx context.Context, volumeID, initiator string) error {
	for _, e := range a.exportsOf(volumeID, initiator) {
		if err := a.qsd.DelExport(ctx, e.daemonID()); err != nil {
			return err
		}
		a.mu.Lock()
		for i, x := range a.exports {
			if x.Name == e.Name {
				a.exports = append(a.exports[:i:i], a.exports[i+1:]...)
				break
			}
		}
		err := a.saveExportsLocked()
		a.mu.Unlock()
		if err != nil {
			return err
		}
		a.log.Info("volume unexported", "volume", volumeID, "initiator", e.Initiator, "export", e.Name)
	}
	if len(a.exportsOf(volumeID, "")) == 0 {
		return a.qsd.DelNode(ctx, nodeName(volumeID))
	}
	return nil
}

// exported says whether the storage daemon has the volume open, in which
// case its file may only be read or changed through the daemon.
func (a *Agent) exported(ctx context.Context, volumeID string) (bool, error) {
	nodes, err := a.qsd.Nodes(ctx)
	if err != nil {
		return false, err
	}
	_, ok := nodes[nodeName(volumeID)]
	return ok, nil
}

// reconcile makes the storage daemon serve exactly the recorded exports
// of volumes that still exist, when the agent starts: exports nobody
// holds any more are removed, with the nodes of volumes and backups that
// nothing uses. It runs before any volume operation.
func (a *Agent) reconcile(ctx context.Context) error {
	a.ops.Lock()
	defer a.ops.Unlock()
	a.mu.Lock()
	kept := a.exports[:0:0]
	for _, e := range a.exports {
		if exists(a.volumePath(e.VolumeID)) {
			kept = append(kept, e)
		} else {
			a.log.Warn("dropping the export of a volume whose file is gone", "volume", e.VolumeID, "export", e.Name)
		}
	}
	a.exports = kept
	err := a.saveExportsLocked()
	want := map[string]export{}
	nodes := map[string]bool{}
	for _, e := range kept {
		want[e.daemonID()] = e
		nodes[nodeName(e.VolumeID)] = true
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	have, err := a.qsd.Exports(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, x := range have {
		if _, ok := want[x.ID]; !ok {
			a.log.Info("removing an export nobody holds", "export", x.ID)
			errs = append(errs, a.qsd.DelExport(ctx, x.ID))
		}
	}
	for _, e := range want {
		if err := a.serve(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("re-export %s: %w", e.Name, err))
		}
	}
	// Jobs a dead agent left running hold their backup targets open.
	errs = append(errs, a.qsd.CancelJobs(ctx))
	open, err := a.qsd.Nodes(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for n := range open {
		// Volume nodes without exports, and the targets of backups
		// that a dead agent or daemon never finished.
		if !nodes[n] {
			errs = append(errs, a.qsd.DelNode(ctx, n))
		}
	}
	return errors.Join(errs...)
}

// restoreExports serves every recorded export again, one volume at a
// time under its lock (so it cannot resurrect an export being removed).
// Adding is idempotent, so exports the daemon still has are untouched.
func (a *Agent) restoreExports(ctx context.Context) error {
	a.mu.Lock()
	var vols []string
	for _, e := range a.exports {
		if !slices.Contains(vols, e.VolumeID) {
			vols = append(vols, e.VolumeID)
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, v := range vols {
		unlock, err := a.lock(ctx, v)
		if err != nil {
			return err
		}
		for _, e := range a.exportsOf(v, "") {
			if err := a.serve(ctx, e); err != nil {
				errs = append(errs, fmt.Errorf("re-export %s: %w", e.Name, err))
			}
		}
		unlock()
	}
	return errors.Join(errs...)
}
