package netagent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// meteringLabel is a metering label as the API shows it (gophercloud has
// no metering package).
type meteringLabel struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	Shared    bool   `json:"shared"`
}

// meteringRule is a metering label rule; source and destination prefixes
// are newer Neutron fields the API may not show.
type meteringRule struct {
	LabelID             string `json:"metering_label_id"`
	Direction           string `json:"direction"`
	RemoteIPPrefix      string `json:"remote_ip_prefix"`
	SourceIPPrefix      string `json:"source_ip_prefix"`
	DestinationIPPrefix string `json:"destination_ip_prefix"`
	Excluded            bool   `json:"excluded"`
}

// listPage is one page of a Neutron list, following its next links.
type listPage struct {
	pagination.LinkedPageBase
	key string
}

func (p listPage) IsEmpty() (bool, error) {
	if p.StatusCode == 204 {
		return true, nil
	}
	var body map[string][]any
	if err := p.ExtractInto(&body); err != nil {
		return false, err
	}
	return len(body[p.key]) == 0, nil
}

// NextPageURL follows Neutron's "<key>_links".
func (p listPage) NextPageURL() (string, error) {
	var body map[string]any
	if err := p.ExtractInto(&body); err != nil {
		return "", err
	}
	links, _ := body[p.key+"_links"].([]any)
	for _, l := range links {
		if m, ok := l.(map[string]any); ok && m["rel"] == "next" {
			href, _ := m["href"].(string)
			return href, nil
		}
	}
	return "", nil
}

// listAll reads every page of the collection key at path into out (a
// pointer to a slice).
func listAll(ctx context.Context, c *gophercloud.ServiceClient, key string, out any, path ...string) error {
	pager := pagination.NewPager(c, c.ServiceURL(path...), func(r pagination.PageResult) pagination.Page {
		return listPage{LinkedPageBase: pagination.LinkedPageBase{PageResult: r}, key: key}
	})
	pages, err := pager.AllPages(ctx)
	if err != nil {
		return err
	}
	return pages.(listPage).ExtractIntoSlicePtr(out, key)
}

// readMetering lists the metering labels and their rules.
func readMetering(ctx context.Context, c *gophercloud.ServiceClient, snap *Snapshot) error {
	if err := listAll(ctx, c, "metering_labels", &snap.MeteringLabels, "metering", "metering-labels"); err != nil {
		return fmt.Errorf("list metering labels: %w", err)
	}
	if err := listAll(ctx, c, "metering_label_rules", &snap.MeteringRules, "metering", "metering-label-rules"); err != nil {
		return fmt.Errorf("list metering label rules: %w", err)
	}
	return nil
}

// routerLabels are the labels that meter router r, as Neutron's metering
// agent applies them: the router's project's labels and every shared one.
func routerLabels(r routers.Router, snap Snapshot) []dataplane.MeteringLabel {
	var out []dataplane.MeteringLabel
	for _, l := range snap.MeteringLabels {
		if !l.Shared && l.ProjectID != r.ProjectID {
			continue
		}
		dl := dataplane.MeteringLabel{ID: l.ID}
		for _, mr := range snap.MeteringRules {
			if mr.LabelID == l.ID {
				dl.Rules = append(dl.Rules, buildMeteringRule(mr))
			}
		}
		out = append(out, dl)
	}
	return out
}

func buildMeteringRule(mr meteringRule) dataplane.MeteringRule {
	prefix := func(s string) netip.Prefix {
		p, _ := parsePrefixOrAddr(s) // the API validated it; "" is no prefix
		return p
	}
	return dataplane.MeteringRule{Direction: dataplane.Direction(mr.Direction), Excluded: mr.Excluded,
		RemoteIPPrefix: prefix(mr.RemoteIPPrefix), SourceIPPrefix: prefix(mr.SourceIPPrefix), DestinationIPPrefix: prefix(mr.DestinationIPPrefix)}
}
