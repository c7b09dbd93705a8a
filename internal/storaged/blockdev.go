package storaged

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// maxNodeName is QEMU's limit on node names (a 32-byte buffer).
const maxNodeName = 31

// Node is a named block node of the daemon.
type Node struct {
	Name     string `json:"node-name"`
	Driver   string `json:"drv"`
	File     string `json:"file"`
	ReadOnly bool   `json:"ro"`
}

// Nodes lists the block nodes the daemon was given names for, by name
// (QEMU's own "#block…" names of implicit children are left out).
func (d *Daemon) Nodes(ctx context.Context) (map[string]Node, error) {
	var list []Node
	if err := d.execute(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &list); err != nil {
		return nil, fmt.Errorf("list block nodes: %w", err)
	}
	out := make(map[string]Node, len(list))
	for _, n := range list {
		if strings.HasPrefix(n.Name, "#") {
			continue
		}
		out[n.Name] = n
	}
	return out, nil
}

// AddQcow2 opens the qcow2 file at path as node name (its file child is
// implicit and goes away with it). A node of that name on that file is
// left as it is, so a repeated call is harmless.
func (d *Daemon) AddQcow2(ctx context.Context, name, path string, readOnly bool) error {
	if name == "" || len(name) > maxNodeName {
		return fmt.Errorf("block node name %q: empty or longer than %d", name, maxNodeName)
	}
	nodes, err := d.Nodes(ctx)
	if err != nil {
		return err
	}
	if n, ok := nodes[name]; ok {
		if n.File != path {
			return fmt.Errorf("block node %s is open on %s, not %s", name, n.File, path)
		}
		return nil
	}
	args := map[string]any{
		"driver": "qcow2", "node-name": name, "read-only": readOnly, "discard": "unmap",
		"file": map[string]any{"driver": "file", "filename": path, "discard": "unmap"},
	}
	if err := d.execute(ctx, "blockdev-add", args, nil); err != nil {
		return fmt.Errorf("open %s as block node %s: %w", path, name, err)
	}
	return nil
}

// DelNode closes node name; a node that is not there is not an error.
func (d *Daemon) DelNode(ctx context.Context, name string) error {
	err := d.execute(ctx, "blockdev-del", map[string]any{"node-name": name}, nil)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("close block node %s: %w", name, err)
	}
	return nil
}

// Export is an NBD export of a block node.
type Export struct {
	ID       string `json:"id"`
	Node     string `json:"node-name"`
	Type     string `json:"type"`
	Shutting bool   `json:"shutting-down"`
}

// Exports lists the daemon's block exports.
func (d *Daemon) Exports(ctx context.Context) ([]Export, error) {
	var list []Export
	if err := d.execute(ctx, "query-block-exports", nil, &list); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return list, nil
}

// AddExport serves node over NBD as export name, identified by id in
// the daemon. An export of that id already there is left as it is.
func (d *Daemon) AddExport(ctx context.Context, id, node, name string, writable bool) error {
	list, err := d.Exports(ctx)
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.ID == id && !e.Shutting {
			if e.Node != node {
				return fmt.Errorf("export %s serves node %s, not %s", id, e.Node, node)
			}
			return nil
		}
	}
	args := map[string]any{"type": "nbd", "id": id, "node-name": node, "name": name, "writable": writable}
	if err := d.execute(ctx, "block-export-add", args, nil); err != nil {
		return fmt.Errorf("add export %s: %w", id, err)
	}
	return nil
}

// DelExport stops export id, disconnecting its clients at once, and
// waits until the daemon has released it (its node can then be closed).
// An export that is not there is not an error.
func (d *Daemon) DelExport(ctx context.Context, id string) error {
	err := d.execute(ctx, "block-export-del", map[string]any{"id": id, "mode": "hard"}, nil)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete export %s: %w", id, err)
	}
	for {
		list, err := d.Exports(ctx)
		if err != nil {
			return err
		}
		gone := true
		for _, e := range list {
			if e.ID == id {
				gone = false
			}
		}
		if gone {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete export %s: %w", id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// isNotFound matches QEMU's answers for a node or export it does not
// have; QEMU gives them the GenericError class, so the text is all there
// is to go by.
func isNotFound(err error) bool {
	var e *qmp.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Class == "DeviceNotFound" || strings.HasPrefix(e.Desc, "Failed to find node") ||
		strings.HasSuffix(e.Desc, "is not found")
}
