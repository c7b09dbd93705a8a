package ring

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
)

// maxWeight keeps weight sums finite however many devices a ring has;
// weights are relative (Swift operators often use gigabytes), so this
// bounds nothing real.
const maxWeight = 1e12

// maxDeviceID bounds device ids so a ring table fits in uint16, as Swift's
// does; 65535 is kept free as a sentinel.
const maxDeviceID = 65534

// Device is one disk (or directory) that a storage server exposes. Region,
// zone and host (IP:Port) are its failure domains, from widest to narrowest;
// the builder spreads a partition's replicas across them in that order.
type Device struct {
	ID     int     `json:"id"`
	Region int     `json:"region"`
	Zone   int     `json:"zone"`
	IP     string  `json:"ip"`
	Port   int     `json:"port"`
	Name   string  `json:"device"`
	Weight float64 `json:"weight"`
	Meta   string  `json:"meta,omitempty"`
}

// Host is the device's server address, the narrowest failure domain above the
// device itself.
func (d Device) Host() string { return net.JoinHostPort(d.IP, strconv.Itoa(d.Port)) }

// String renders the device in the add syntax (r1z2-10.0.0.1:6200/sdb1) so
// messages name devices the way operators typed them.
func (d Device) String() string {
	s := fmt.Sprintf("d%dr%dz%d-%s/%s", d.ID, d.Region, d.Zone, d.Host(), d.Name)
	if d.Meta != "" {
		s += "_" + d.Meta
	}
	return s
}

// validate checks what every consumer of a device relies on: an address the
// proxy can dial, a name usable as a directory, a weight that keeps the
// arithmetic finite.
func (d Device) validate() error {
	if d.ID < 0 || d.ID > maxDeviceID {
		return fmt.Errorf("device id %d out of range 0..%d", d.ID, maxDeviceID)
	}
	if d.Region < 0 || d.Zone < 0 {
		return fmt.Errorf("device %d: region and zone must not be negative", d.ID)
	}
	if d.IP == "" || strings.ContainsAny(d.IP, " \t\r\n/[]") {
		return fmt.Errorf("device %d: invalid ip %q", d.ID, d.IP)
	}
	if d.Port < 1 || d.Port > 65535 {
		return fmt.Errorf("device %d: port %d out of range 1..65535", d.ID, d.Port)
	}
	if d.Name == "" || d.Name == "." || d.Name == ".." || strings.ContainsAny(d.Name, "/ \t\r\n\x00") {
		return fmt.Errorf("device %d: invalid device name %q", d.ID, d.Name)
	}
	if math.IsNaN(d.Weight) || d.Weight < 0 || d.Weight > maxWeight {
		return fmt.Errorf("device %d: weight %v must be a number from 0 to %g", d.ID, d.Weight, maxWeight)
	}
	return nil
}

// ParseDeviceSpec parses swift-ring-builder's add syntax,
// "r<region>z<zone>-<ip>:<port>/<device>[_<meta>]", so operators can reuse
// their Swift runbooks. The region defaults to 1 when omitted; IPv6
// addresses go in brackets ("r1z1-[::1]:6200/sdb1"). The ID is left 0 for
// the builder to assign.
func ParseDeviceSpec(spec string) (Device, error) {
	q, err := parseSearch(spec)
	if err != nil {
		return Device{}, fmt.Errorf("parse device %q: %w", spec, err)
	}
	if q.id != nil {
		return Device{}, fmt.Errorf("parse device %q: ids are assigned by the builder", spec)
	}
	if q.zone == nil || q.ip == nil || q.port == nil || q.name == nil {
		return Device{}, fmt.Errorf("parse device %q: want r<region>z<zone>-<ip>:<port>/<device>[_<meta>]", spec)
	}
	d := Device{Region: 1, Zone: *q.zone, IP: *q.ip, Port: *q.port, Name: *q.name}
	if q.region != nil {
		d.Region = *q.region
	}
	if q.meta != nil {
		d.Meta = *q.meta
	}
	if err := d.validate(); err != nil {
		return Device{}, fmt.Errorf("parse device %q: %w", spec, err)
	}
	return d, nil
}

// search selects devices by any subset of their attributes, in
// swift-ring-builder's search-value syntax:
// d<id>r<region>z<zone>-<ip>:<port>/<device>_<meta>, every part optional.
type search struct {
	id, region, zone, port *int
	ip, name, meta         *string
}

func (q search) matches(d Device) bool {
	return (q.id == nil || *q.id == d.ID) &&
		(q.region == nil || *q.region == d.Region) &&
		(q.zone == nil || *q.zone == d.Zone) &&
		(q.ip == nil || *q.ip == d.IP) &&
		(q.port == nil || *q.port == d.Port) &&
		(q.name == nil || *q.name == d.Name) &&
		(q.meta == nil || *q.meta == d.Meta)
}

func parseSearch(s string) (search, error) {
	var q search
	if s == "" {
		return q, fmt.Errorf("empty search value")
	}
	num := func(prefix byte) (*int, error) {
		if len(s) == 0 || s[0] != prefix {
			return nil, nil
		}
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 1 || i > 10 {
			return nil, fmt.Errorf("%c needs a number", prefix)
		}
		n, err := strconv.Atoi(s[1:i])
		if err != nil {
			return nil, fmt.Errorf("%c: %w", prefix, err)
		}
		s = s[i:]
		return &n, nil
	}
	var err error
	if q.id, err = num('d'); err != nil {
		return q, err
	}
	if q.region, err = num('r'); err != nil {
		return q, err
	}
	if q.zone, err = num('z'); err != nil {
		return q, err
	}
	// The IP follows a '-', or starts the value when nothing precedes it.
	if strings.HasPrefix(s, "-") || (len(s) > 0 && (s[0] == '[' || (s[0] >= '0' && s[0] <= '9'))) {
		s = strings.TrimPrefix(s, "-")
		var ip string
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return q, fmt.Errorf("unterminated [ in ip")
			}
			ip, s = s[1:end], s[end+1:]
		} else {
			end := strings.IndexAny(s, ":/_")
			if end < 0 {
				end = len(s)
			}
			ip, s = s[:end], s[end:]
		}
		if ip == "" {
			return q, fmt.Errorf("empty ip")
		}
		q.ip = &ip
	}
	if strings.HasPrefix(s, ":") {
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 1 || i > 6 {
			return q, fmt.Errorf(": needs a port number")
		}
		p, _ := strconv.Atoi(s[1:i])
		q.port, s = &p, s[i:]
	}
	if strings.HasPrefix(s, "/") {
		end := strings.IndexByte(s, '_')
		if end < 0 {
			end = len(s)
		}
		name := s[1:end]
		if name == "" {
			return q, fmt.Errorf("empty device name")
		}
		q.name, s = &name, s[end:]
	}
	if strings.HasPrefix(s, "_") {
		meta := s[1:]
		q.meta, s = &meta, ""
	}
	if s != "" {
		return q, fmt.Errorf("unexpected %q", s)
	}
	return q, nil
}
