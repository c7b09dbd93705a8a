package metadata

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
)

const (
	testInstance = "6f1c3a52-7d0e-4b8e-9c1a-2b3c4d5e6f70"
	testProject  = "proj-1"
	testImage    = "0a1b2c3d-0000-4000-8000-000000000001"
	testKey      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE key@host"
)

var testSecret = []byte("s3cret")

// fakeGuests is the compute database with one instance.
func fakeGuests(_ context.Context, id string) (compute.GuestInfo, error) {
	if id != testInstance {
		return compute.GuestInfo{}, compute.ErrNotFound
	}
	return compute.GuestInfo{
		InstanceSpec: compute.InstanceSpec{
			ID: testInstance, Name: "web 1", Hostname: "web-1", ProjectID: testProject, ImageID: testImage,
			Flavor:  compute.FlavorSpec{Name: "m1.small", EphemeralG: 1},
			KeyName: "mykey", KeyData: testKey, UserData: base64.StdEncoding.EncodeToString([]byte("#cloud-config\n")),
			Metadata: map[string]string{"role": "web"}, AvailabilityZone: "nova", LaunchIndex: 0,
			SecurityGroups: []string{"default", "web"}, AdminPass: "never-served",
		},
		Seq: 42, ReservationID: "r-abcd1234",
	}, nil
}

// fakeNetwork is one DHCP port with a floating IP.
type fakeNetwork struct{}

func (fakeNetwork) InstanceNetwork(context.Context, string) (NetworkInfo, error) {
	return testNetworkInfo(), nil
}

func testNetworkInfo() NetworkInfo {
	return NetworkInfo{
		Ports: []Port{{ID: "port-0123456789", NetworkID: "net-1", MAC: "fa:16:3e:00:00:05", DeviceID: testInstance,
			DeviceOwner: "compute:nova", ProjectID: testProject, FixedIPs: []FixedIP{{SubnetID: "sub-1", IPAddress: "10.0.0.5"}}}},
		Networks:    map[string]Network{"net-1": {ID: "net-1", MTU: 1450}},
		Subnets:     map[string]Subnet{"sub-1": {ID: "sub-1", IPVersion: 4, CIDR: "10.0.0.0/24", EnableDHCP: true, DNSNameservers: []string{"10.0.0.2"}}},
		FloatingIPs: map[string]string{"10.0.0.5": "172.24.4.10"},
	}
}

func testServer() *Server {
	return NewServer(ServerConfig{Secret: testSecret, Guest: fakeGuests, Network: fakeNetwork{}})
}

type response struct {
	code int
	body string
	ct   string
}

// get asks h for p as a proxy would, signed with the test secret unless
// headers override it.
func get(h http.Handler, p string, headers map[string]string) response {
	r := httptest.NewRequest(http.MethodGet, p, nil)
	r.Header.Set(HeaderInstanceID, testInstance)
	r.Header.Set(HeaderTenantID, testProject)
	r.Header.Set(HeaderSignature, Sign(testSecret, testInstance))
	r.Header.Set(HeaderForwarded, "10.0.0.5")
	for k, v := range headers {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return response{w.Code, w.Body.String(), w.Header().Get("Content-Type")}
}

// wantBodies checks that each path answers 200 with its body.
func wantBodies(t *testing.T, h http.Handler, bodies map[string]string) {
	t.Helper()
	for p, want := range bodies {
		if got := get(h, p, nil); got.code != 200 || got.body != want {
			t.Errorf("GET %s: %d %q, want %q", p, got.code, got.body, want)
		}
	}
}

func wantNotFound(t *testing.T, h http.Handler, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if got := get(h, p, nil); got.code != 404 {
			t.Errorf("GET %s: %d %q, want 404", p, got.code, got.body)
		}
	}
}

func TestServerRefusals(t *testing.T) {
	s := testServer()
	const other = "11111111-2222-3333-4444-555555555555"
	for _, tc := range []struct {
		name    string
		headers map[string]string
		code    int
	}{
		{"good signature", nil, 200},
		{"bad signature", map[string]string{HeaderSignature: Sign([]byte("wrong"), testInstance)}, 403},
		{"signature of another instance", map[string]string{HeaderSignature: Sign(testSecret, other)}, 403},
		{"missing signature", map[string]string{HeaderSignature: ""}, 400},
		{"missing instance", map[string]string{HeaderInstanceID: ""}, 400},
		{"missing tenant", map[string]string{HeaderTenantID: ""}, 400},
		{"unknown instance", map[string]string{HeaderInstanceID: other, HeaderSignature: Sign(testSecret, other)}, 404},
		{"another tenant", map[string]string{HeaderTenantID: "proj-2"}, 404},
	} {
		if got := get(s, "/openstack/latest/meta_data.json", tc.headers); got.code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, got.code, got.body, tc.code)
		}
	}
	r := httptest.NewRequest(http.MethodDelete, "/latest/meta-data/", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", w.Code)
	}
}

// Listings are Nova's: one name per line, no trailing newline,
// directories with a slash.
func TestServerListings(t *testing.T) {
	s := testServer()
	for p, want := range map[string]string{
		"/":                      strings.Join(EC2Versions, "\n") + "\nlatest",
		"/openstack":             strings.Join(OpenStackVersions, "\n") + "\nlatest",
		"/openstack/":            strings.Join(OpenStackVersions, "\n") + "\nlatest",
		"/openstack/latest":      "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json",
		"/openstack/2012-08-10/": "meta_data.json\nuser_data",
		"/openstack/2013-10-17":  "meta_data.json\nuser_data\npassword\nvendor_data.json",
		"/latest":                "meta-data/\nuser-data",
		"/2009-04-04/":           "meta-data/\nuser-data",
		"/latest/meta-data/": "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nhostname\ninstance-action\n" +
			"instance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nplacement/\npublic-hostname\npublic-ipv4\npublic-keys/\n" +
			"reservation-id\nsecurity-groups",
		"/1.0/meta-data": "ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-id\nlocal-ipv4\npublic-keys/\n" +
			"reservation-id\nsecurity-groups",
		"/latest/meta-data/public-keys":          "0=mykey",
		"/latest/meta-data/public-keys/0/":       "openssh-key",
		"/latest/meta-data/placement/":           "availability-zone",
		"/latest/meta-data/block-device-mapping": "ami\nephemeral0\nroot",
	} {
		got := get(s, p, nil)
		if got.code != 200 || got.body != want || got.ct != textPlain {
			t.Errorf("GET %s: %d %s\n%s\nwant\n%s", p, got.code, got.ct, got.body, want)
		}
	}
}

func TestServerEC2Values(t *testing.T) {
	s := testServer()
	wantBodies(t, s, map[string]string{
		"/latest/meta-data/ami-id":                          "ami-0a1b2c3d",
		"/latest/meta-data/instance-id":                     "i-0000002a",
		"/latest/meta-data/instance-type":                   "m1.small",
		"/latest/meta-data/hostname":                        "web-1",
		"/latest/meta-data/local-hostname":                  "web-1",
		"/latest/meta-data/local-ipv4":                      "10.0.0.5",
		"/latest/meta-data/public-ipv4":                     "172.24.4.10",
		"/latest/meta-data/placement/availability-zone":     "nova",
		"/latest/meta-data/public-keys/0/openssh-key":       testKey,
		"/latest/meta-data/reservation-id":                  "r-abcd1234",
		"/latest/meta-data/security-groups":                 "default\nweb",
		"/latest/meta-data/block-device-mapping/root":       "/dev/vda",
		"/latest/meta-data/block-device-mapping/ephemeral0": "/dev/vdb",
		"/2009-04-04/meta-data/instance-action":             "none",
		"/latest/user-data":                                 "#cloud-config\n",
	})
	wantNotFound(t, s, "/2010-01-01/meta-data/", "/latest/meta-data/nope", "/latest/meta-data/public-keys/0/_name",
		"/1.0/meta-data/local-hostname", "/latest/meta-data/hostname/x")
}

func TestServerOpenStackFiles(t *testing.T) {
	s := testServer()
	got := get(s, "/openstack/latest/meta_data.json", nil)
	if got.ct != appJSON {
		t.Errorf("content type %q", got.ct)
	}
	var md map[string]any
	if err := json.Unmarshal([]byte(got.body), &md); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"uuid": testInstance, "name": "web 1", "hostname": "web-1", "availability_zone": "nova",
		"project_id": testProject, "launch_index": float64(0)}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("meta_data.json %s = %v, want %v", k, md[k], v)
		}
	}
	if md["public_keys"].(map[string]any)["mykey"] != testKey || md["keys"].([]any)[0].(map[string]any)["data"] != testKey ||
		md["meta"].(map[string]any)["role"] != "web" || len(md["devices"].([]any)) != 0 || md["random_seed"] == nil {
		t.Errorf("meta_data.json %v", md)
	}
	if _, ok := md["admin_pass"]; ok {
		t.Error("the admin password served over the network")
	}
	// Older versions have only the fields they had.
	var old map[string]any
	_ = json.Unmarshal([]byte(get(s, "/openstack/2012-08-10/meta_data.json", nil).body), &old)
	if _, ok := old["project_id"]; ok || old["uuid"] != testInstance {
		t.Errorf("2012-08-10 meta_data.json %v", old)
	}
	var nd struct {
		Links    []map[string]any `json:"links"`
		Networks []map[string]any `json:"networks"`
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal([]byte(get(s, "/openstack/latest/network_data.json", nil).body), &nd); err != nil {
		t.Fatal(err)
	}
	if len(nd.Links) != 1 || nd.Links[0]["id"] != "tapport-012345" || nd.Links[0]["mtu"] != float64(1450) ||
		nd.Networks[0]["type"] != "ipv4_dhcp" || nd.Services[0]["address"] != "10.0.0.2" {
		t.Errorf("network_data.json %+v", nd)
	}
	wantBodies(t, s, map[string]string{
		"/openstack/latest/user_data":             "#cloud-config\n",
		"/openstack/latest/vendor_data.json":      "{}",
		"/openstack/latest/vendor_data2.json":     "{}",
		"/openstack/2016-10-06/vendor_data2.json": "{}",
		"/openstack/latest/password":              "",
	})
	wantNotFound(t, s, "/openstack/2011-01-01/meta_data.json", "/openstack/latest/nope", "/openstack/2013-04-04/vendor_data.json",
		"/openstack/2012-08-10/password", "/openstack/latest/meta_data.json/x")
}

// Without user data there is no user_data file and no user-data leaf.
func TestServerNoUserData(t *testing.T) {
	s := NewServer(ServerConfig{Secret: testSecret, Guest: func(ctx context.Context, id string) (compute.GuestInfo, error) {
		g, err := fakeGuests(ctx, id)
		g.UserData = ""
		return g, err
	}})
	for p, want := range map[string]int{"/openstack/latest/user_data": 404, "/latest/user-data": 404, "/latest/meta-data/local-ipv4": 200} {
		if got := get(s, p, nil); got.code != want {
			t.Errorf("GET %s: %d, want %d", p, got.code, want)
		}
	}
	if got := get(s, "/latest", nil); got.body != "meta-data/" {
		t.Errorf("/latest %q", got.body)
	}
}

func TestNetmask(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/24": "255.255.255.0", "10.0.0.0/20": "255.255.240.0", "0.0.0.0/0": "0.0.0.0",
		"fd00::/64": "ffff:ffff:ffff:ffff::",
	} {
		if got := netmask(netip.MustParsePrefix(in)); got != want {
			t.Errorf("netmask(%s) = %s, want %s", in, got, want)
		}
	}
}

// The config drive carries every version, the EC2 meta-data and the admin
// password, rendered by the same code as the API.
func TestConfigDriveFiles(t *testing.T) {
	g, _ := fakeGuests(context.Background(), testInstance)
	inst := instanceFromGuest(g)
	inst.AdminPass = "pw"
	c, err := NewContent(inst, testNetworkInfo())
	if err != nil {
		t.Fatal(err)
	}
	files, err := ConfigDriveFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"openstack/latest/meta_data.json", "openstack/2012-08-10/meta_data.json", "openstack/latest/network_data.json",
		"openstack/latest/vendor_data2.json", "openstack/latest/user_data", "ec2/latest/meta-data.json", "ec2/2009-04-04/user-data"} {
		if files[f] == nil {
			t.Errorf("no %s", f)
		}
	}
	if _, ok := files["openstack/latest/password"]; ok {
		t.Error("password file on the drive")
	}
	if !strings.Contains(string(files["openstack/latest/meta_data.json"]), `"admin_pass":"pw"`) {
		t.Error("no admin_pass on the drive")
	}
	var ec2 map[string]any
	if err := json.Unmarshal(files["ec2/latest/meta-data.json"], &ec2); err != nil || ec2["instance-id"] != "i-0000002a" {
		t.Errorf("ec2 meta-data.json %v %v", ec2, err)
	}
}
