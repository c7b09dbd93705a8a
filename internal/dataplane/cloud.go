package dataplane

import (
	"os"
	"path/filepath"
	"strings"
)

// PublicCloud names the public cloud this host runs in, or "" on premises.
type PublicCloud string

// Clouds Nimbus recognises from DMI data.
const (
	CloudNone    PublicCloud = ""
	CloudAlibaba PublicCloud = "alibaba"
	CloudAWS     PublicCloud = "aws"
	CloudAzure   PublicCloud = "azure"
	CloudGCP     PublicCloud = "gcp"
)

// azureAssetTag is the chassis asset tag every Azure VM reports.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// DetectPublicCloud reads the firmware identity the hypervisor exposes in
// sysfs (root "/" in production; tests pass a directory of fake files). It
// never asks a metadata service: that would be a network call at start-up
// and, inside a guest of Nimbus itself, the wrong answer.
func DetectPublicCloud(root string) PublicCloud {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "sys/class/dmi/id", name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	vendor, product := read("sys_vendor"), read("product_name")
	switch {
	case strings.HasPrefix(vendor, "Alibaba Cloud") || strings.HasPrefix(product, "Alibaba Cloud"):
		return CloudAlibaba
	case vendor == "Amazon EC2" || strings.Contains(strings.ToLower(read("product_version")), "amazon") ||
		strings.HasPrefix(strings.ToLower(read("product_uuid")), "ec2"):
		return CloudAWS
	case read("chassis_asset_tag") == azureAssetTag:
		return CloudAzure
	case vendor == "Google" || product == "Google Compute Engine":
		return CloudGCP
	}
	return CloudNone
}

// DefaultExternalMode is the mode an external network gets when the operator
// names none: routed inside a public cloud, where foreign MAC/IP pairs are
// dropped, bridged on premises.
func DefaultExternalMode(c PublicCloud) ExternalMode {
	if c != CloudNone {
		return ExternalRouted
	}
	return ExternalBridged
}
