package metadata

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// OpenStack metadata versions, oldest first, as Nova's
// nova/api/metadata/base.py names them. A guest asking for a version gets
// exactly the fields that version had.
const (
	versionFolsom    = "2012-08-10"
	versionGrizzly   = "2013-04-04"
	versionHavana    = "2013-10-17"
	versionLiberty   = "2015-10-15"
	versionNewtonOne = "2016-06-30"
	versionNewtonTwo = "2016-10-06"
	versionOcata     = "2017-02-22"
	versionRocky     = "2018-08-27"
	versionVictoria  = "2020-10-14"
)

// OpenStackVersions are the dated versions under /openstack.
var OpenStackVersions = []string{versionFolsom, versionGrizzly, versionHavana, versionLiberty, versionNewtonOne,
	versionNewtonTwo, versionOcata, versionRocky, versionVictoria}

// EC2Versions are the EC2 metadata versions Nova serves at the root.
var EC2Versions = []string{"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
	"2008-02-01", "2008-09-01", "2009-04-04"}

// latest is the alias every guest may use for the newest version.
const latest = "latest"

// Names of the files of an OpenStack version directory.
const (
	fileMetaData    = "meta_data.json"
	fileUserData    = "user_data"
	filePassword    = "password"
	fileVendorData  = "vendor_data.json"
	fileNetworkData = "network_data.json"
	fileVendorData2 = "vendor_data2.json"
)

// Instance is what the metadata service and the config drive say about a
// guest. The config drive and the metadata API render it through the same
// Content, so a guest sees the same answers from either.
type Instance struct {
	ID, Name, Hostname, ProjectID, AvailabilityZone string
	LaunchIndex                                     int
	// KeyName and KeyData are the guest's SSH key pair, if it has one.
	KeyName, KeyData string
	// UserData is base64, as the compute API stores it.
	UserData string
	Metadata map[string]string
	// AdminPass is only ever set for a config drive: Nova never serves
	// the password over the network, where any guest process can read it.
	AdminPass string

	// EC2 view: Seq makes the i-%08x id, as Nova's integer instance id.
	Seq            int
	ImageID        string
	FlavorName     string
	EphemeralGB    int
	SwapMB         int
	ReservationID  string
	SecurityGroups []string
}

// Content renders one instance's metadata in the OpenStack and EC2
// formats, for any version.
type Content struct {
	inst     Instance
	net      NetworkInfo
	userData []byte // nil: the instance has none
}

// NewContent checks inst and prepares its rendering.
func NewContent(inst Instance, net NetworkInfo) (*Content, error) {
	c := &Content{inst: inst, net: net}
	if inst.UserData != "" {
		ud, err := base64.StdEncoding.DecodeString(inst.UserData)
		if err != nil {
			return nil, fmt.Errorf("user_data of instance %s is not base64: %w", inst.ID, err)
		}
		c.userData = ud
	}
	return c, nil
}

// atLeast reports whether version (a date, or latest) has what since
// introduced; dates compare as strings.
func atLeast(version, since string) bool {
	return version == latest || version >= since
}

// OpenStackVersion resolves a version path element, false when unknown.
func OpenStackVersion(v string) (string, bool) {
	return v, v == latest || slices.Contains(OpenStackVersions, v)
}

// OpenStackFiles lists an OpenStack version directory in Nova's order.
func (c *Content) OpenStackFiles(version string) []string {
	out := []string{fileMetaData}
	if c.userData != nil {
		out = append(out, fileUserData)
	}
	if atLeast(version, versionGrizzly) {
		out = append(out, filePassword)
	}
	if atLeast(version, versionHavana) {
		out = append(out, fileVendorData)
	}
	if atLeast(version, versionLiberty) {
		out = append(out, fileNetworkData)
	}
	if atLeast(version, versionNewtonTwo) {
		out = append(out, fileVendorData2)
	}
	return out
}

// OpenStackFile renders one file of an OpenStack version directory; false
// when the version has no such file. The password is the metadata
// server's business (it is stored, not rendered) and is not a file here.
func (c *Content) OpenStackFile(version, name string) ([]byte, bool, error) {
	if !slices.Contains(c.OpenStackFiles(version), name) {
		return nil, false, nil
	}
	var v any
	switch name {
	case fileUserData:
		return c.userData, true, nil
	case fileMetaData:
		v = c.metaData(version)
	case fileNetworkData:
		v = networkData(c.net)
	case fileVendorData, fileVendorData2:
		// No vendor data providers are configured: Nova's answer is {}.
		v = map[string]any{}
	default:
		return nil, false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false, fmt.Errorf("render %s of instance %s: %w", name, c.inst.ID, err)
	}
	return b, true, nil
}

// metaData is meta_data.json of one version.
func (c *Content) metaData(version string) map[string]any {
	i := c.inst
	md := map[string]any{
		"uuid": i.ID, "name": i.Name, "hostname": i.Hostname, "availability_zone": i.AvailabilityZone,
		"launch_index": i.LaunchIndex, "meta": nonNil(i.Metadata),
	}
	if i.KeyName != "" && i.KeyData != "" {
		md["public_keys"] = map[string]string{i.KeyName: i.KeyData}
		md["keys"] = []map[string]string{{"name": i.KeyName, "type": "ssh", "data": i.KeyData}}
	}
	if i.AdminPass != "" {
		md["admin_pass"] = i.AdminPass
	}
	if atLeast(version, versionGrizzly) {
		// Guests seed their entropy pool from this at first boot.
		var seed [512]byte
		_, _ = rand.Read(seed[:])
		md["random_seed"] = base64.StdEncoding.EncodeToString(seed[:])
	}
	if atLeast(version, versionLiberty) {
		md["project_id"] = i.ProjectID
	}
	if atLeast(version, versionNewtonOne) {
		// Device role tagging is not supported, so no device is tagged.
		md["devices"] = []any{}
	}
	return md
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// ec2Name is the "_name" key of an EC2 tree node: the listing shows it
// instead of the key (public-keys/ lists "0=mykey").
const ec2Name = "_name"

// EC2Version resolves an EC2 version path element (latest is the newest
// dated one), false when unknown.
func EC2Version(v string) (string, bool) {
	if v == latest {
		return EC2Versions[len(EC2Versions)-1], true
	}
	return v, slices.Contains(EC2Versions, v)
}

// EC2 is the EC2 metadata tree of a resolved version, as Nova's
// get_ec2_metadata: "meta-data" and, if the guest has any, "user-data".
// Leaves are strings, []string (one per line) or []byte.
func (c *Content) EC2(version string) map[string]any {
	i := c.inst
	fixed, floating := c.net.firstIPv4()
	md := map[string]any{
		"ami-id":               ec2ID("ami", i.ImageID),
		"ami-launch-index":     fmt.Sprint(i.LaunchIndex),
		"ami-manifest-path":    "FIXME", // Nova's literal answer
		"instance-id":          fmt.Sprintf("i-%08x", i.Seq),
		"hostname":             i.Hostname,
		"local-ipv4":           fixed,
		"reservation-id":       i.ReservationID,
		"security-groups":      nonNilSlice(i.SecurityGroups),
		"instance-action":      "none",
		"instance-type":        i.FlavorName,
		"block-device-mapping": c.blockDeviceMapping(),
		"placement":            map[string]any{"availability-zone": i.AvailabilityZone},
		"local-hostname":       i.Hostname,
		"public-hostname":      i.Hostname,
		"public-ipv4":          floating,
	}
	if i.KeyName != "" && i.KeyData != "" {
		md["public-keys"] = map[string]any{"0": map[string]any{ec2Name: "0=" + i.KeyName, "openssh-key": i.KeyData}}
	}
	// Fields by the version that introduced them, as Nova gates them.
	for since, keys := range map[string][]string{
		"2007-01-19": {"local-hostname", "public-hostname", "public-ipv4"},
		"2007-08-29": {"instance-type"},
		"2007-12-15": {"block-device-mapping"},
		"2008-02-01": {"placement"},
		"2008-09-01": {"instance-action"},
	} {
		if version < since {
			for _, k := range keys {
				delete(md, k)
			}
		}
	}
	data := map[string]any{"meta-data": md}
	if c.userData != nil {
		data["user-data"] = c.userData
	}
	return data
}

// blockDeviceMapping names the guest's disks as Nova's
// _format_instance_mapping does for an image-backed guest on virtio.
func (c *Content) blockDeviceMapping() map[string]any {
	m := map[string]any{"ami": "vda", "root": "/dev/vda"}
	next := 'b'
	if c.inst.EphemeralGB > 0 {
		m["ephemeral0"] = "/dev/vd" + string(next)
		next++
	}
	if c.inst.SwapMB > 0 {
		m["swap"] = "/dev/vd" + string(next)
	}
	return m
}

// ec2ID makes an EC2-style id (ami-0a1b2c3d) from a UUID. Nova keeps a
// table mapping UUIDs to integers for this; the UUID's leading 32 bits
// are as stable and need no table.
func ec2ID(prefix, uuid string) string {
	hex := strings.ReplaceAll(uuid, "-", "")
	if len(hex) < 8 {
		return prefix + "-00000000"
	}
	return prefix + "-" + hex[:8]
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// EC2Lookup walks the EC2 tree along path (elements after the version);
// false when there is nothing there.
func EC2Lookup(tree map[string]any, path []string) (any, bool) {
	var node any = tree
	for _, p := range path {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = m[p]; !ok || p == ec2Name {
			return nil, false
		}
	}
	return node, true
}

// EC2Render writes a node as Nova's ec2_md_print: a directory lists its
// keys sorted, one per line, subdirectories with a trailing slash (or
// their _name); a list is one item per line; a leaf is itself.
func EC2Render(node any) []byte {
	switch v := node.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			if k != ec2Name {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		lines := make([]string, 0, len(keys))
		for _, k := range keys {
			sub, isDir := v[k].(map[string]any)
			switch {
			case isDir && sub[ec2Name] != nil:
				lines = append(lines, fmt.Sprint(sub[ec2Name]))
			case isDir:
				lines = append(lines, k+"/")
			default:
				lines = append(lines, k)
			}
		}
		return []byte(strings.Join(lines, "\n"))
	case []string:
		return []byte(strings.Join(v, "\n"))
	case []byte:
		return v
	default:
		return []byte(fmt.Sprint(v))
	}
}

// ConfigDriveFiles renders a config drive's files the way Nova's
// configdrive does: every OpenStack version and latest, and the EC2
// meta-data as JSON, so that a guest reading the drive sees what the
// metadata service would tell it.
func ConfigDriveFiles(c *Content) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, v := range append(slices.Clone(OpenStackVersions), latest) {
		for _, name := range c.OpenStackFiles(v) {
			if name == filePassword {
				continue // posted by the guest; not on a read-only drive
			}
			b, _, err := c.OpenStackFile(v, name)
			if err != nil {
				return nil, err
			}
			files["openstack/"+v+"/"+name] = b
		}
	}
	for _, v := range append(slices.Clone(EC2Versions), latest) {
		resolved, _ := EC2Version(v)
		tree := c.EC2(resolved)
		b, err := json.Marshal(tree["meta-data"])
		if err != nil {
			return nil, fmt.Errorf("render ec2 meta-data of instance %s: %w", c.inst.ID, err)
		}
		files["ec2/"+v+"/meta-data.json"] = b
		if c.userData != nil {
			files["ec2/"+v+"/user-data"] = c.userData
		}
	}
	return files, nil
}
