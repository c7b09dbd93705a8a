package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// loadYAML writes doc to a temp file and loads it with the data dir set,
// as `nimbus --config` does.
func loadYAML(t *testing.T, doc string) (Config, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "nimbus.yaml")
	if err := os.WriteFile(path, []byte("data_dir: "+dir+"\n"+doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

// With no image section the image service gets Glance's stores = file,http:
// a writable filesystem store in the data dir as default and a read-only
// http store.
func TestImageDefaults(t *testing.T) {
	cfg := Default()
	cfg.DataDir = "/srv/nimbus"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []ImageStoreConfig{
		{ID: "file", Type: StoreFilesystem, Filesystem: &FilesystemStoreConfig{Dir: "/srv/nimbus/images"}},
		{ID: "http", Type: StoreHTTP},
	}
	if got := cfg.ImageStores(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stores = %+v, want %+v", got, want)
	}
	if got := cfg.ImageDefaultStore(); got != "file" {
		t.Fatalf("default store = %q, want file", got)
	}
	if got := cfg.ImageStagingDir(); got != "/srv/nimbus/images-staging" {
		t.Fatalf("staging dir = %q", got)
	}
	if !cfg.Image.WebDownload.Enabled || cfg.Image.WebDownload.AllowPrivate {
		t.Fatalf("web download = %+v, want enabled, private addresses refused", cfg.Image.WebDownload)
	}
	a := cfg.Image.Auth
	if a.Username != "glance" || a.ProjectName != "service" || a.UserDomainName != "Default" || a.Password != "" {
		t.Fatalf("auth = %+v", a)
	}
	cfg.PublicHost, cfg.Identity.Port = "ctl.example", 5000
	if got := cfg.ServiceAuthURL(cfg.Image.Auth); got != "http://ctl.example:5000/v3" {
		t.Fatalf("auth url = %q", got)
	}

	// The setting of earlier releases still moves the default store.
	cfg.Image.Dir = "/data/glance"
	if got := cfg.ImageStores()[0].Filesystem.Dir; got != "/data/glance" {
		t.Fatalf("image.dir ignored: file store in %q", got)
	}
}

func TestImageStoresFromYAML(t *testing.T) {
	cfg, err := loadYAML(t, `
image:
  stores:
    - id: fast
      type: filesystem
      description: Local NVMe
      filesystem: {dir: /nvme/images}
    - id: ceph
      type: s3
      s3:
        endpoint: https://rgw.example:8443
        region: eu-1
        bucket: images
        prefix: glance/
        access_key: AK
        secret_key: SK
        part_size: 64MiB
    - id: web
      type: http
    - id: scratch
      type: filesystem
  default_store: ceph
  max_image_size: 100GiB
  staging_dir: /nvme/staging
  quota: {images: 100, bytes: 2TiB, staging_bytes: 500GB, uploading: 4}
  convert_to: raw
  show_multiple_locations: true
  web_download:
    enabled: false
    allow_private: true
    allowed_hosts: [mirror.internal, 10.1.0.0/16]
  auth:
    auth_url: https://keystone.example:5000/v3
    password: s3cret
    token_cache_time: 1m
`)
	if err != nil {
		t.Fatal(err)
	}
	im := cfg.Image
	stores := cfg.ImageStores()
	if len(stores) != 4 || stores[0].Filesystem.Dir != "/nvme/images" || stores[0].Description != "Local NVMe" {
		t.Fatalf("stores = %+v", stores)
	}
	if got := stores[3].Filesystem.Dir; got != filepath.Join(cfg.DataDir, "images-scratch") {
		t.Fatalf("filesystem store without dir is in %q", got)
	}
	wantS3 := S3StoreConfig{Endpoint: "https://rgw.example:8443", Region: "eu-1", Bucket: "images", Prefix: "glance/",
		AccessKey: "AK", SecretKey: "SK", PartSize: 64 << 20}
	if *stores[1].S3 != wantS3 {
		t.Fatalf("s3 = %+v", *stores[1].S3)
	}
	if cfg.ImageDefaultStore() != "ceph" || im.MaxImageSize != 100<<30 || cfg.ImageStagingDir() != "/nvme/staging" {
		t.Fatalf("image = %+v", im)
	}
	if im.Quota != (ImageQuota{Images: 100, Bytes: 2 << 40, StagingBytes: 500e9, Uploading: 4}) {
		t.Fatalf("quota = %+v", im.Quota)
	}
	if im.ConvertTo != "raw" || !im.ShowMultipleLocations {
		t.Fatalf("convert_to / show_multiple_locations = %q / %v", im.ConvertTo, im.ShowMultipleLocations)
	}
	wd := im.WebDownload
	if wd.Enabled || !wd.AllowPrivate || !reflect.DeepEqual(wd.AllowedHosts, []string{"mirror.internal", "10.1.0.0/16"}) {
		t.Fatalf("web_download = %+v", wd)
	}
	// Unset auth keys keep their defaults.
	if a := im.Auth; a.AuthURL != "https://keystone.example:5000/v3" || a.Password != "s3cret" || a.Username != "glance" ||
		a.TokenCacheTime != time.Minute {
		t.Fatalf("auth = %+v", a)
	}
}

// Mistakes are refused at load with the YAML key at fault.
func TestImageConfigErrors(t *testing.T) {
	s3 := "      s3: {endpoint: http://minio:9000, bucket: b, access_key: a, secret_key: s}\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown type", "image:\n  stores:\n    - {id: x, type: ceph}\n", `image.stores[0].type "ceph" is not a store type`},
		{"missing type", "image:\n  stores:\n    - {id: x}\n", "image.stores[0].type is required"},
		{"missing id", "image:\n  stores:\n    - {type: filesystem}\n", "image.stores[0].id is required"},
		{"bad id", "image:\n  stores:\n    - {id: 'a/b', type: filesystem}\n", `image.stores[0].id "a/b"`},
		{"reserved id", "image:\n  stores:\n    - {id: os_glance_staging_store, type: filesystem}\n", "reserved"},
		{"duplicate ids", "image:\n  stores:\n    - {id: a, type: filesystem}\n    - {id: a, type: http}\n", `image.stores[1].id "a" is already used by image.stores[0]`},
		{"default undefined", "image:\n  default_store: nope\n", `image.default_store "nope" is not one of image.stores`},
		{"default read-only", "image:\n  default_store: http\n", `image.default_store "http" is an http store, which is read-only`},
		{"default ambiguous", "image:\n  stores:\n    - {id: a, type: filesystem}\n    - {id: b, type: filesystem}\n", "image.default_store is required"},
		{"only read-only", "image:\n  stores:\n    - {id: web, type: http}\n", "image.default_store is required"},
		{"bad convert_to", "image:\n  convert_to: vmdk\n", `image.convert_to "vmdk" must be raw, qcow2 or empty`},
		{"s3 section missing", "image:\n  stores:\n    - {id: s, type: s3}\n", "image.stores[0].s3 is required"},
		{"s3 bucket missing", "image:\n  stores:\n    - id: s\n      type: s3\n      s3: {endpoint: http://minio:9000, access_key: a, secret_key: s}\n", "image.stores[0].s3.bucket is required"},
		{"s3 bad endpoint", "image:\n  stores:\n    - id: s\n      type: s3\n      s3: {endpoint: minio:9000, bucket: b, access_key: a, secret_key: s}\n", "image.stores[0].s3.endpoint"},
		{"s3 small part", "image:\n  stores:\n    - id: s\n      type: s3\n      s3: {endpoint: http://m, bucket: b, access_key: a, secret_key: s, part_size: 1MiB}\n", "image.stores[0].s3.part_size"},
		{"settings of another type", "image:\n  stores:\n    - id: s\n      type: filesystem\n" + s3, "s3 settings given for a filesystem store"},
		{"shared dir", "image:\n  default_store: a\n  stores:\n    - {id: a, type: filesystem, filesystem: {dir: /x}}\n    - {id: b, type: filesystem, filesystem: {dir: /x/}}\n", `image.stores[1].filesystem.dir /x is also the directory of store "a"`},
		{"staging in a store", "image:\n  staging_dir: /x\n  stores:\n    - {id: a, type: filesystem, filesystem: {dir: /x}}\n", "image.staging_dir /x"},
		{"negative quota", "image:\n  quota: {images: -1}\n", "image.quota.images must not be negative"},
		{"bad size", "image:\n  max_image_size: 10 parsecs\n", "size \"10 parsecs\""},
		{"bad auth url", "image:\n  auth: {auth_url: 'keystone:5000'}\n", "image.auth.auth_url"},
		{"unknown key", "image:\n  stores:\n    - {id: s, type: filesystem, path: /x}\n", "field path not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestImageEnvOverrides(t *testing.T) {
	cfg := Default()
	env := map[string]string{
		"NIMBUS_IMAGE_DEFAULT_STORE":              "file",
		"NIMBUS_IMAGE_STAGING_DIR":                "/stage",
		"NIMBUS_IMAGE_CONVERT_TO":                 "qcow2",
		"NIMBUS_IMAGE_MAX_IMAGE_SIZE":             "20GiB",
		"NIMBUS_IMAGE_QUOTA_IMAGES":               "10",
		"NIMBUS_IMAGE_QUOTA_BYTES":                "1000",
		"NIMBUS_IMAGE_QUOTA_STAGING_BYTES":        "1KB",
		"NIMBUS_IMAGE_QUOTA_UPLOADING":            "2",
		"NIMBUS_IMAGE_SHOW_MULTIPLE_LOCATIONS":    "true",
		"NIMBUS_IMAGE_WEB_DOWNLOAD":               "false",
		"NIMBUS_IMAGE_WEB_DOWNLOAD_ALLOW_PRIVATE": "1",
		"NIMBUS_IMAGE_WEB_DOWNLOAD_ALLOWED_HOSTS": "127.0.0.1, mirror.internal",
		"NIMBUS_IMAGE_AUTH_URL":                   "http://ks:5000/v3",
		"NIMBUS_IMAGE_AUTH_PASSWORD":              "pw",
		"NIMBUS_IMAGE_AUTH_TOKEN_CACHE_TIME":      "30s",
	}
	if err := cfg.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	im := cfg.Image
	if im.DefaultStore != "file" || im.StagingDir != "/stage" || im.ConvertTo != "qcow2" || im.MaxImageSize != 20<<30 {
		t.Fatalf("scalars = %+v", im)
	}
	if im.Quota != (ImageQuota{Images: 10, Bytes: 1000, StagingBytes: 1000, Uploading: 2}) {
		t.Fatalf("quota = %+v", im.Quota)
	}
	if !im.ShowMultipleLocations || im.WebDownload.Enabled || !im.WebDownload.AllowPrivate {
		t.Fatalf("booleans = %+v", im)
	}
	if h := im.WebDownload.AllowedHosts; len(h) != 2 || h[0] != "127.0.0.1" || h[1] != "mirror.internal" {
		t.Fatalf("allowed hosts = %q", h)
	}
	if im.Auth.AuthURL != "http://ks:5000/v3" || im.Auth.Password != "pw" || im.Auth.TokenCacheTime != 30*time.Second {
		t.Fatalf("auth = %+v", im.Auth)
	}
	for k, v := range map[string]string{"NIMBUS_IMAGE_MAX_IMAGE_SIZE": "big", "NIMBUS_IMAGE_SHOW_MULTIPLE_LOCATIONS": "maybe",
		"NIMBUS_IMAGE_QUOTA_IMAGES": "1.5"} {
		err := cfg.applyEnv(func(key string) (string, bool) { return v, key == k })
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error = %v, want one naming the variable", k, v, err)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1024": 1024, "1KiB": 1024, "5 MiB": 5 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40,
		"1KB": 1000, "3MB": 3e6, "1GB": 1e9, "2TB": 2e12, "7B": 7,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "1.5GiB", "1PiB", "9999999TiB", "ten"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}
