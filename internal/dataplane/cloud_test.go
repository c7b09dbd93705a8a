package dataplane

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetectPublicCloud(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  PublicCloud
	}{
		{map[string]string{"sys_vendor": "Alibaba Cloud\n", "product_name": "Alibaba Cloud ECS\n"}, CloudAlibaba},
		{map[string]string{"sys_vendor": "Amazon EC2\n"}, CloudAWS},
		{map[string]string{"sys_vendor": "Xen\n", "product_version": "4.11.amazon\n"}, CloudAWS},
		{map[string]string{"sys_vendor": "Microsoft Corporation\n", "chassis_asset_tag": azureAssetTag + "\n"}, CloudAzure},
		{map[string]string{"sys_vendor": "Google\n", "product_name": "Google Compute Engine\n"}, CloudGCP},
		{map[string]string{"sys_vendor": "Dell Inc.\n", "product_name": "PowerEdge R650\n"}, CloudNone},
		{nil, CloudNone},
	}
	for _, c := range cases {
		root := t.TempDir()
		dir := filepath.Join(root, "sys/class/dmi/id")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range c.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := DetectPublicCloud(root); got != c.want {
			t.Errorf("%v: got %q, want %q", c.files, got, c.want)
		}
	}
	if DefaultExternalMode(CloudAlibaba) != ExternalRouted || DefaultExternalMode(CloudNone) != ExternalBridged {
		t.Errorf("default modes wrong")
	}
}
