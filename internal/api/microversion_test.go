package api_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

var compute = api.Microversions{
	ServiceType:  "compute",
	LegacyHeader: "X-OpenStack-Nova-API-Version",
	Min:          api.Version{Major: 2, Minor: 1},
	Max:          api.Version{Major: 2, Minor: 79},
}

func TestNegotiate(t *testing.T) {
	const std, legacy = "OpenStack-API-Version", "X-OpenStack-Nova-API-Version"
	for _, tc := range []struct {
		name   string
		header http.Header
		want   api.Version
	}{
		{"none means min", http.Header{}, compute.Min},
		{"standard", http.Header{std: {"compute 2.10"}}, api.Version{Major: 2, Minor: 10}},
		{"standard max", http.Header{std: {"compute 2.79"}}, compute.Max},
		{"standard min", http.Header{std: {"compute 2.1"}}, compute.Min},
		{"service type case-insensitive", http.Header{std: {"COMPUTE 2.5"}}, api.Version{Major: 2, Minor: 5}},
		{"latest", http.Header{std: {"compute latest"}}, compute.Max},
		{"Latest", http.Header{std: {"compute Latest"}}, compute.Max},
		{"legacy", http.Header{legacy: {"2.20"}}, api.Version{Major: 2, Minor: 20}},
		{"legacy latest", http.Header{legacy: {"latest"}}, compute.Max},
		{"standard wins over legacy", http.Header{std: {"compute 2.30"}, legacy: {"2.20"}}, api.Version{Major: 2, Minor: 30}},
		{"other service ignored", http.Header{std: {"volume 3.50"}}, compute.Min},
		{"other service falls to legacy", http.Header{std: {"volume 3.50"}, legacy: {"2.40"}}, api.Version{Major: 2, Minor: 40}},
		{"list in one header", http.Header{std: {"volume 3.50, compute 2.60"}}, api.Version{Major: 2, Minor: 60}},
		{"several headers", http.Header{std: {"volume 3.50", "compute 2.61"}}, api.Version{Major: 2, Minor: 61}},
		{"white space", http.Header{std: {"  compute   2.62  "}}, api.Version{Major: 2, Minor: 62}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v2.1/servers", nil)
			for k, vs := range tc.header {
				for _, v := range vs {
					r.Header.Add(k, v) // canonicalizes k, as a real request's parser does
				}
			}
			w := httptest.NewRecorder()
			got, err := compute.Negotiate(w, r)
			if err != nil || got != tc.want {
				t.Fatalf("Negotiate = %v, %v; want %v", got, err, tc.want)
			}
			h := w.Header()
			if v := h.Get(std); v != "compute "+tc.want.String() {
				t.Errorf("%s = %q", std, v)
			}
			if v := h.Get(legacy); v != tc.want.String() {
				t.Errorf("%s = %q", legacy, v)
			}
			if vary := h.Values("Vary"); !slices.Contains(vary, std) || !slices.Contains(vary, legacy) {
				t.Errorf("Vary = %v, want both version headers", vary)
			}
		})
	}
}

func TestNegotiateWithoutLegacyHeader(t *testing.T) {
	image := api.Microversions{ServiceType: "image", Min: api.Version{Major: 2, Minor: 0}, Max: api.Version{Major: 2, Minor: 16}}
	r := httptest.NewRequest(http.MethodGet, "/v2/images", nil)
	r.Header.Set("X-OpenStack-Nova-API-Version", "2.5")
	w := httptest.NewRecorder()
	got, err := image.Negotiate(w, r)
	if err != nil || got != image.Min {
		t.Fatalf("Negotiate = %v, %v; want min", got, err)
	}
	if vary := w.Header().Values("Vary"); !slices.Equal(vary, []string{"OpenStack-API-Version"}) {
		t.Errorf("Vary = %v", vary)
	}
	if v := w.Header().Get("OpenStack-API-Version"); v != "image 2.0" {
		t.Errorf("OpenStack-API-Version = %q", v)
	}
}

func TestNegotiateRejects(t *testing.T) {
	for _, tc := range []struct {
		header, value string
		status        int
	}{
		{"OpenStack-API-Version", "compute 2.80", http.StatusNotAcceptable},
		{"OpenStack-API-Version", "compute 2.0", http.StatusNotAcceptable},
		{"OpenStack-API-Version", "compute 3.0", http.StatusNotAcceptable},
		{"OpenStack-API-Version", "compute 1.99", http.StatusNotAcceptable},
		{"X-OpenStack-Nova-API-Version", "2.100", http.StatusNotAcceptable},
		{"OpenStack-API-Version", "compute 2", http.StatusBadRequest},
		{"OpenStack-API-Version", "compute two.one", http.StatusBadRequest},
		{"OpenStack-API-Version", "compute 2.1.1", http.StatusBadRequest},
		{"OpenStack-API-Version", "compute 2.-1", http.StatusBadRequest},
		{"OpenStack-API-Version", "compute -2.1", http.StatusBadRequest},
		{"OpenStack-API-Version", "compute 2.", http.StatusBadRequest},
		{"OpenStack-API-Version", "compute newest", http.StatusBadRequest},
		{"X-OpenStack-Nova-API-Version", "v2.1", http.StatusBadRequest},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v2.1/servers", nil)
		r.Header.Set(tc.header, tc.value)
		w := httptest.NewRecorder()
		_, err := compute.Negotiate(w, r)
		e := apiError(t, err, tc.status)
		if tc.status == http.StatusNotAcceptable && (!strings.Contains(e.Message, "2.1") || !strings.Contains(e.Message, "2.79")) {
			t.Errorf("%s: 406 message %q does not give the supported range", tc.value, e.Message)
		}
		if w.Header().Get("OpenStack-API-Version") != "" {
			t.Errorf("%s: version header set on a rejected request", tc.value)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]api.Version{
		"2.1": {Major: 2, Minor: 1}, "2.79": {Major: 2, Minor: 79}, " 3.0 ": {Major: 3}, "10.100": {Major: 10, Minor: 100},
	} {
		if got, err := api.ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "2", ".1", "2.", "a.b", "2.1.0", "-1.0", "1.-1", "latest"} {
		if _, err := api.ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) accepted", in)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	v := api.Version{Major: 2, Minor: 10}
	if v.String() != "2.10" {
		t.Errorf("String = %q", v)
	}
	// 2.10 is newer than 2.9: versions compare numerically, not as text.
	if !(api.Version{Major: 2, Minor: 9}).Less(v) || v.Less(api.Version{Major: 2, Minor: 9}) || v.Less(v) {
		t.Error("Less is not numeric")
	}
	if !(api.Version{Major: 1, Minor: 99}).Less(v) || !v.Less(api.Version{Major: 3, Minor: 0}) {
		t.Error("Less ignores the major version")
	}
	if !v.AtLeast(2, 10) || !v.AtLeast(2, 9) || v.AtLeast(2, 11) || v.AtLeast(3, 0) {
		t.Error("AtLeast wrong")
	}
}
