package config

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Switch is an on/off setting that can also be left unset, so that the
// command decides: `nimbus up` turns a host's agents on when it runs as
// root on a machine that has what they need, `nimbus serve` leaves them
// off, and an operator's explicit true or false always wins.
type Switch struct {
	set, on bool
}

// On and Off are explicitly set switches.
var (
	On  = Switch{set: true, on: true}
	Off = Switch{set: true}
)

// Enabled reports whether the switch is on (an unset switch is off).
func (s Switch) Enabled() bool { return s.on }

// IsSet reports whether configuration or the environment set the switch.
func (s Switch) IsSet() bool { return s.set }

// Default turns an unset switch on or off; a set one keeps its value.
func (s *Switch) Default(on bool) {
	if !s.set {
		s.on = on
	}
}

// Parse sets the switch from a boolean text such as "1", "true" or "off".
func (s *Switch) Parse(v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	*s = Switch{set: true, on: b}
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Switch) UnmarshalYAML(n *yaml.Node) error {
	if err := s.Parse(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalYAML implements yaml.Marshaler: an unset switch is written as
// null so that a round trip keeps it unset.
func (s Switch) MarshalYAML() (any, error) {
	if !s.set {
		return nil, nil
	}
	return s.on, nil
}

// parseBool accepts Go's boolean spellings and YAML's on/off, yes/no.
func parseBool(v string) (bool, error) {
	switch v {
	case "on", "yes", "ON", "Yes", "YES", "On":
		return true, nil
	case "off", "no", "OFF", "No", "NO", "Off":
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not a boolean", v)
	}
	return b, nil
}
