package network

import (
	"net/http"
	"testing"
)

func TestMetering(t *testing.T) {
	h := newHarness(t)
	l := h.create("admin", "metering/metering-labels", "metering_label", map[string]any{"name": "web", "description": "d"})
	lid := l["id"].(string)
	if l["shared"] != false || l["project_id"] != projX {
		t.Fatalf("label %v", l)
	}
	h.fail("a", "POST", "/v2.0/metering/metering-labels", map[string]any{"metering_label": map[string]any{"name": "x"}}, http.StatusForbidden, "")
	r := h.create("admin", "metering/metering-label-rules", "metering_label_rule", map[string]any{"metering_label_id": lid, "remote_ip_prefix": "10.0.1.5/24", "direction": "ingress"})
	if r["remote_ip_prefix"] != "10.0.1.0/24" || r["excluded"] != false {
		t.Fatalf("rule %v", r)
	}
	h.fail("admin", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{"metering_label_id": lid, "remote_ip_prefix": "10.0.0.0/16", "direction": "ingress"}}, http.StatusConflict, "MeteringLabelRuleOverlaps")
	h.create("admin", "metering/metering-label-rules", "metering_label_rule", map[string]any{"metering_label_id": lid, "remote_ip_prefix": "10.0.0.0/16", "direction": "egress"})
	h.fail("admin", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{"metering_label_id": lid, "remote_ip_prefix": "bogus"}}, http.StatusBadRequest, "InvalidInput")
	if n := len(h.json("admin", "GET", "/v2.0/metering/metering-label-rules?metering_label_id="+lid, nil, http.StatusOK)["metering_label_rules"].([]any)); n != 2 {
		t.Fatalf("%d rules", n)
	}
	h.json("admin", "DELETE", "/v2.0/metering/metering-labels/"+lid, nil, http.StatusNoContent)
	h.fail("admin", "GET", "/v2.0/metering/metering-label-rules/"+r["id"].(string), nil, http.StatusNotFound, "MeteringLabelRuleNotFound")
	h.fail("admin", "GET", "/v2.0/metering/metering-labels/"+lid, nil, http.StatusNotFound, "MeteringLabelNotFound")
}
