package vpcroute

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAliyunVPC is just enough of the Alibaba Cloud VPC API (2016-04-28)
// for the route controller: DescribeRouteEntryList, CreateRouteEntry and
// DeleteRouteEntry on route tables it keeps in memory. It checks every
// request's signature with its own implementation (written from the
// documentation's recipe: standard query escaping, then the documented
// replacements), refuses replayed nonces and stale timestamps, and answers
// errors in the API's JSON format. Entries are created Pending and become
// Available after pendingPolls describes, as the real API's asynchronous
// creation does; deletions likewise take pendingPolls describes.
type fakeAliyunVPC struct {
	keyID, secret, region, token string

	mu           sync.Mutex
	tables       map[string]map[string]*fakeAliyunEntry // table → CIDR → entry; guarded by mu
	instances    map[string]bool                        // instance ids in the VPC; guarded by mu
	nonces       map[string]bool                        // guarded by mu
	clientTokens map[string]string                      // client token → entry id; guarded by mu
	calls        map[string]int                         // action → requests that passed auth; guarded by mu
	throttle     int                                    // the next requests answered Throttling.User; guarded by mu
	pendingPolls int                                    // guarded by mu
	authFails    []string                               // guarded by mu
	nextID       int                                    // guarded by mu
}

type fakeAliyunEntry struct {
	id, cidr, typ, hopType, hopID, status string
	polls                                 int  // describes left before the next state
	deleting                              bool // gone once polls reach 0
}

func newFakeAliyunVPC(t *testing.T) (*fakeAliyunVPC, *httptest.Server) {
	t.Helper()
	f := &fakeAliyunVPC{
		keyID: "LTAIfake", secret: "s3cret+/=", region: "cn-beijing",
		tables:       map[string]map[string]*fakeAliyunEntry{"vtb-test": {}},
		instances:    map[string]bool{"i-nimbus": true, "i-other": true},
		nonces:       map[string]bool{},
		clientTokens: map[string]string{},
		calls:        map[string]int{},
	}
	// A system route, as every VPC route table has for its vSwitches.
	f.tables["vtb-test"]["10.0.0.0/24"] = &fakeAliyunEntry{id: "rte-system", cidr: "10.0.0.0/24", typ: "System", hopType: "local", status: "Available"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// seed adds an Available custom entry.
func (f *fakeAliyunVPC) seed(cidr, instance string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.tables["vtb-test"][cidr] = &fakeAliyunEntry{id: fmt.Sprintf("rte-seed%d", f.nextID), cidr: cidr, typ: "Custom", hopType: "Instance", hopID: instance, status: "Available"}
}

func (f *fakeAliyunVPC) entry(cidr string) *fakeAliyunEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.tables["vtb-test"][cidr]; e != nil {
		c := *e
		return &c
	}
	return nil
}

func (f *fakeAliyunVPC) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

func (f *fakeAliyunVPC) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{
		"RequestId": "FAKE-REQ", "HostId": "vpc.fake.aliyuncs.com", "Code": code, "Message": msg,
		"Recommend": "https://api.aliyun.com/troubleshoot",
	})
}

// aliyunDocEncode is the encoding recipe of the signature documentation:
// standard form escaping, then '+' → %20, '*' → %2A, %7E → '~'.
func aliyunDocEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

// verify recomputes the signature of r with secret; "" when it matches.
func aliyunVerify(r *http.Request, secret string) (code, why string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "IncompleteSignature", "bad query: " + err.Error()
	}
	got := q.Get("Signature")
	if got == "" {
		return "IncompleteSignature", "no signature"
	}
	q.Del("Signature")
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, aliyunDocEncode(k)+"="+aliyunDocEncode(q.Get(k)))
	}
	toSign := r.Method + "&" + aliyunDocEncode("/") + "&" + aliyunDocEncode(strings.Join(pairs, "&"))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(toSign))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(want), []byte(got)) {
		return "SignatureDoesNotMatch", "string to sign was " + toSign
	}
	return "", ""
}

func (f *fakeAliyunVPC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()

	if q.Get("AccessKeyId") != f.keyID {
		f.authFails = append(f.authFails, "unknown key "+q.Get("AccessKeyId"))
		f.fail(w, http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
		return
	}
	if code, why := aliyunVerify(r, f.secret); code != "" {
		f.authFails = append(f.authFails, why)
		f.fail(w, http.StatusBadRequest, code, "Specified signature is not matched with our calculation.")
		return
	}
	if q.Get("SignatureMethod") != "HMAC-SHA1" || q.Get("SignatureVersion") != "1.0" || q.Get("Format") != "JSON" || q.Get("Version") != "2016-04-28" {
		f.fail(w, http.StatusBadRequest, "InvalidParameter", "common parameters: "+r.URL.RawQuery)
		return
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", q.Get("Timestamp"))
	if err != nil || time.Since(ts).Abs() > 15*time.Minute {
		f.fail(w, http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
		return
	}
	if nonce := q.Get("SignatureNonce"); nonce == "" || f.nonces[nonce] {
		f.fail(w, http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
		return
	} else {
		f.nonces[nonce] = true
	}
	if q.Get("SecurityToken") != f.token {
		f.fail(w, http.StatusBadRequest, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
		return
	}
	if q.Get("RegionId") != f.region {
		f.fail(w, http.StatusBadRequest, "InvalidRegionId.NotFound", "The specified region does not exist.")
		return
	}
	action := q.Get("Action")
	f.calls[action]++
	if f.throttle > 0 {
		f.throttle--
		f.fail(w, http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control.")
		return
	}
	table, ok := f.tables[q.Get("RouteTableId")]
	if !ok {
		f.fail(w, http.StatusBadRequest, "InvalidRouteTableId.NotFound", "The specified route table does not exist.")
		return
	}
	cidr := q.Get("DestinationCidrBlock")
	reply := map[string]any{"RequestId": fmt.Sprintf("FAKE-%d", len(f.nonces))}
	switch action {
	case "DescribeRouteEntryList":
		f.advance(table)
		var list []map[string]any
		for _, e := range table {
			if cidr != "" && e.cidr != cidr {
				continue
			}
			list = append(list, map[string]any{
				"RouteEntryId": e.id, "RouteTableId": q.Get("RouteTableId"), "DestinationCidrBlock": e.cidr,
				"Type": e.typ, "Status": e.status, "IpVersion": "ipv4", "RouteEntryName": "", "Description": "",
				"NextHops": map[string]any{"NextHop": []map[string]any{{"NextHopType": e.hopType, "NextHopId": e.hopID, "Enabled": 1, "Weight": 0}}},
			})
		}
		reply["RouteEntrys"] = map[string]any{"RouteEntry": list}
		reply["NextToken"] = ""
		reply["TotalCount"] = fmt.Sprint(len(list))
	case "CreateRouteEntry":
		if id, ok := f.clientTokens[q.Get("ClientToken")]; ok {
			reply["RouteEntryId"] = id
			break
		}
		if q.Get("NextHopType") != "Instance" || !f.instances[q.Get("NextHopId")] {
			f.fail(w, http.StatusBadRequest, "InvalidInstanceId.NotFound", "The specified instance does not exist.")
			return
		}
		if table[cidr] != nil {
			f.fail(w, http.StatusBadRequest, "RouterEntryConflict.Duplicated", "A route entry with the same destination CIDR block already exists.")
			return
		}
		f.nextID++
		e := &fakeAliyunEntry{id: fmt.Sprintf("rte-fake%d", f.nextID), cidr: cidr, typ: "Custom", hopType: "Instance", hopID: q.Get("NextHopId"), status: "Pending", polls: f.pendingPolls}
		table[cidr] = e
		if tok := q.Get("ClientToken"); tok != "" {
			f.clientTokens[tok] = e.id
		}
		reply["RouteEntryId"] = e.id
	case "DeleteRouteEntry":
		var e *fakeAliyunEntry
		for _, x := range table {
			if x.id == q.Get("RouteEntryId") {
				e = x
			}
		}
		if e == nil || e.deleting {
			f.fail(w, http.StatusBadRequest, "InvalidRouteEntryId.NotFound", "The specified route entry does not exist.")
			return
		}
		if e.status != "Available" || e.typ != "Custom" {
			f.fail(w, http.StatusBadRequest, "IncorrectRouteEntryStatus", "The current status of the route entry does not support this operation.")
			return
		}
		e.status, e.deleting, e.polls = "Deleting", true, f.pendingPolls
	default:
		f.fail(w, http.StatusBadRequest, "InvalidAction.NotFound", "Specified api is not found.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(reply)
}

// advance moves every entry one describe further along.
func (f *fakeAliyunVPC) advance(table map[string]*fakeAliyunEntry) {
	for cidr, e := range table {
		if e.polls > 0 {
			e.polls--
			continue
		}
		switch {
		case e.deleting:
			delete(table, cidr)
		case e.status != "Available":
			e.status = "Available"
		}
	}
}
