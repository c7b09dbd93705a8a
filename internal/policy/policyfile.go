package policy

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// override is one rule from a policy file.
type override struct {
	name string
	text string
	line int
}

// decodePolicyFile reads a policy file: a mapping of rule name to rule
// string. It walks the YAML node tree rather than decoding into a map so
// errors can carry line numbers and duplicate names are caught.
//
// It is stricter than oslo in three places, all of which oslo accepts and
// then enforces in ways operators rarely mean: a null value (oslo: allow
// everyone), the deprecated list-of-lists syntax, and a repeated rule name
// (oslo: last one silently wins) are errors here.
func decodePolicyFile(data []byte) ([]override, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file: no overrides
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: policy file must be a mapping of rule names to rule strings", root.Line)
	}
	seen := make(map[string]int, len(root.Content)/2)
	out := make([]override, 0, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			return nil, fmt.Errorf("line %d: rule names must be plain strings", k.Line)
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			return nil, fmt.Errorf("rule %q (line %d): already defined on line %d", name, k.Line, first)
		}
		seen[name] = k.Line
		text, err := ruleText(v)
		if err != nil {
			return nil, fmt.Errorf("rule %q (line %d): %w", name, k.Line, err)
		}
		out = append(out, override{name: name, text: text, line: k.Line})
	}
	return out, nil
}

// ruleText extracts a rule string from a mapping value.
func ruleText(v *yaml.Node) (string, error) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch {
	case v.Kind == yaml.SequenceNode:
		return "", errors.New(`the list-of-lists rule syntax is not supported; write the rule as a string using "and"/"or"`)
	case v.Kind != yaml.ScalarNode:
		return "", errors.New("rule must be a string")
	case v.Tag == "!!null":
		return "", errors.New(`rule has no value; write "" or "@" to allow everyone, "!" to allow no one`)
	case v.Tag != "!!str":
		return "", fmt.Errorf("rule must be a string, not %s %q; quote it", v.ShortTag(), v.Value)
	}
	return v.Value, nil
}
