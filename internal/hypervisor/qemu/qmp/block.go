package qmp

import "context"

// The commands below add and remove the pieces of a network disk: a
// secret-bearing object (TLS credentials), a block node and the guest
// device on it. Removal is made idempotent by the caller asking what
// exists first (QueryNamedBlockNodes, QOMList) rather than by matching
// QEMU's error strings, which are not a stable interface.

// ObjectAdd creates a QOM object (object-add); args are its properties
// as -object takes them ("qom-type", "id", ...).
func (m *Monitor) ObjectAdd(ctx context.Context, args map[string]any) error {
	return m.Execute(ctx, "object-add", args, nil)
}

// ObjectDel removes the QOM object id.
func (m *Monitor) ObjectDel(ctx context.Context, id string) error {
	return m.Execute(ctx, "object-del", map[string]any{"id": id}, nil)
}

// BlockdevAdd opens a block node (blockdev-add); args are the node's
// options as -blockdev takes them in JSON form.
func (m *Monitor) BlockdevAdd(ctx context.Context, args map[string]any) error {
	return m.Execute(ctx, "blockdev-add", args, nil)
}

// BlockdevDel closes the block node nodeName, which no device may still
// use.
func (m *Monitor) BlockdevDel(ctx context.Context, nodeName string) error {
	return m.Execute(ctx, "blockdev-del", map[string]any{"node-name": nodeName}, nil)
}

// BlockNode is the part of query-named-block-nodes the driver uses.
type BlockNode struct {
	NodeName string `json:"node-name"`
	Driver   string `json:"drv"`
	ReadOnly bool   `json:"ro"`
}

// QueryNamedBlockNodes lists every named block node, children included
// (flat), so a node added by blockdev-add is there whether or not a
// device uses it.
func (m *Monitor) QueryNamedBlockNodes(ctx context.Context) ([]BlockNode, error) {
	var nodes []BlockNode
	err := m.Execute(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes)
	return nodes, err
}

// QOMProperty is one entry of qom-list: a child object or a property.
type QOMProperty struct {
	Name string `json:"name"`
	// Type is "child<TYPE>" for a child object, else the property's type.
	Type string `json:"type"`
}

// QOMList lists the properties and children of the QOM object at path
// ("/objects" holds object-add's objects, "/machine/peripheral" the
// devices that have an id).
func (m *Monitor) QOMList(ctx context.Context, path string) ([]QOMProperty, error) {
	var props []QOMProperty
	err := m.Execute(ctx, "qom-list", map[string]any{"path": path}, &props)
	return props, err
}
