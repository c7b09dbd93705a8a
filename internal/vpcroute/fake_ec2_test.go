package vpcroute

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEC2 is just enough of the EC2 Query API (2016-11-15) for the route
// controller: DescribeRouteTables, CreateRoute, ReplaceRoute, DeleteRoute,
// DescribeInstanceAttribute and ModifyInstanceAttribute (sourceDestCheck),
// on route tables and instances it keeps in memory. It checks every
// request's SigV4 signature with its own implementation, written from the
// AWS documentation apart from internal/sigv4, and answers errors in EC2's
// XML format.
type fakeEC2 struct {
	keyID, secret, token, region, service string

	mu        sync.Mutex
	tables    map[string][]*fakeEC2Route // guarded by mu
	srcDst    map[string]bool            // instance → source/dest check on; guarded by mu
	calls     map[string]int             // guarded by mu
	throttle  int                        // the next requests answered RequestLimitExceeded; guarded by mu
	authFails []string                   // guarded by mu
}

type fakeEC2Route struct {
	cidr, gateway, instance, origin string
}

func newFakeEC2(t *testing.T) (*fakeEC2, *httptest.Server) {
	t.Helper()
	f := &fakeEC2{
		keyID: "AKIAFAKE", secret: "wJal/fake+secret", region: "eu-test-1", service: "ec2",
		tables: map[string][]*fakeEC2Route{"rtb-test": {{cidr: "10.0.0.0/16", gateway: "local", origin: "CreateRouteTable"}}},
		srcDst: map[string]bool{"i-nimbus": true, "i-other": true},
		calls:  map[string]int{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeEC2) route(cidr string) *fakeEC2Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.tables["rtb-test"] {
		if r.cidr == cidr {
			c := *r
			return &c
		}
	}
	return nil
}

func (f *fakeEC2) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

func (f *fakeEC2) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake-req</RequestID></Response>`, code, msg)
}

// ec2Encode is the URI encoding of the SigV4 documentation.
func ec2Encode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// verify recomputes the SigV4 signature of r; "" when it matches.
func (f *fakeEC2) verify(r *http.Request, body []byte) (code, why string) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return "MissingAuthenticationToken", "no AWS4-HMAC-SHA256 authorization"
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[0] != f.keyID {
		return "AuthFailure", "unknown credential " + fields["Credential"]
	}
	if cred[2] != f.region || cred[3] != f.service || cred[4] != "aws4_request" {
		return "SignatureDoesNotMatch", "bad credential scope " + fields["Credential"]
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if len(amzDate) != 16 || !strings.HasPrefix(amzDate, cred[1]) {
		return "SignatureDoesNotMatch", "x-amz-date does not match the scope"
	}
	names := strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(names) {
		return "SignatureDoesNotMatch", "signed headers not sorted"
	}
	must := []string{"host", "x-amz-date"}
	if f.token != "" {
		must = append(must, "x-amz-security-token")
	}
	for _, m := range must {
		found := false
		for _, n := range names {
			found = found || n == m
		}
		if !found {
			return "SignatureDoesNotMatch", m + " not signed"
		}
	}
	var headers strings.Builder
	for _, n := range names {
		v := r.Header.Get(n)
		if n == "host" {
			v = r.Host
		}
		headers.WriteString(n + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	var uri strings.Builder
	for i, seg := range strings.Split(r.URL.Path, "/") {
		if i > 0 {
			uri.WriteByte('/')
		}
		uri.WriteString(ec2Encode(ec2Encode(seg)))
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, ec2Encode(k)+"\x00"+ec2Encode(v))
		}
	}
	sort.Strings(pairs) // NUL sorts before every encoded byte: by key, then value
	for i, p := range pairs {
		pairs[i] = strings.Replace(p, "\x00", "=", 1)
	}
	bodyHash := sha256.Sum256(body)
	canonical := r.Method + "\n" + uri.String() + "\n" + strings.Join(pairs, "&") + "\n" + headers.String() + "\n" +
		fields["SignedHeaders"] + "\n" + hex.EncodeToString(bodyHash[:])
	crHash := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + strings.Join(cred[1:], "/") + "\n" + hex.EncodeToString(crHash[:])
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		io.WriteString(h, s)
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+f.secret), cred[1])
	k = mac(k, f.region)
	k = mac(k, f.service)
	k = mac(k, "aws4_request")
	if want := hex.EncodeToString(mac(k, toSign)); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "SignatureDoesNotMatch", "signature mismatch; canonical request was:\n" + canonical
	}
	if r.Header.Get("X-Amz-Security-Token") != f.token {
		return "AuthFailure", "wrong session token"
	}
	return "", ""
}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.fail(w, http.StatusBadRequest, "InvalidRequest", "unreadable body")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if code, why := f.verify(r, body); code != "" {
		f.authFails = append(f.authFails, why)
		status := http.StatusForbidden
		if code == "AuthFailure" {
			status = http.StatusUnauthorized
		}
		f.fail(w, status, code, "AWS was not able to validate the provided access credentials")
		return
	}
	if ts, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date")); err != nil || time.Since(ts).Abs() > 5*time.Minute {
		f.fail(w, http.StatusBadRequest, "RequestExpired", "Request has expired.")
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f.fail(w, http.StatusBadRequest, "InvalidRequest", "want a POSTed form")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Version") != "2016-11-15" {
		f.fail(w, http.StatusBadRequest, "InvalidParameterValue", "bad form or version")
		return
	}
	action := form.Get("Action")
	f.calls[action]++
	if f.throttle > 0 {
		f.throttle--
		f.fail(w, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
		return
	}
	instance := form.Get("InstanceId")
	if instance != "" {
		if _, ok := f.srcDst[instance]; !ok {
			f.fail(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '"+instance+"' does not exist")
			return
		}
	}
	ok := func(name string) {
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fake-req</requestId><return>true</return></%sResponse>`, name, name)
	}
	switch action {
	case "DescribeInstanceAttribute":
		if form.Get("Attribute") != "sourceDestCheck" {
			f.fail(w, http.StatusBadRequest, "InvalidParameterValue", "attribute")
			return
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstanceAttributeResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fake-req</requestId><instanceId>%s</instanceId><sourceDestCheck><value>%t</value></sourceDestCheck></DescribeInstanceAttributeResponse>`, instance, f.srcDst[instance])
	case "ModifyInstanceAttribute":
		v := form.Get("SourceDestCheck.Value")
		if v != "true" && v != "false" {
			f.fail(w, http.StatusBadRequest, "InvalidParameterCombination", "SourceDestCheck.Value")
			return
		}
		f.srcDst[instance] = v == "true"
		ok("ModifyInstanceAttribute")
	case "DescribeRouteTables":
		id := form.Get("RouteTableId.1")
		routes, found := f.tables[id]
		if !found {
			f.fail(w, http.StatusBadRequest, "InvalidRouteTableID.NotFound", "The routeTable ID '"+id+"' does not exist")
			return
		}
		var b strings.Builder
		for _, rt := range routes {
			b.WriteString("<item><destinationCidrBlock>" + rt.cidr + "</destinationCidrBlock>")
			if rt.gateway != "" {
				b.WriteString("<gatewayId>" + rt.gateway + "</gatewayId>")
			}
			if rt.instance != "" {
				b.WriteString("<instanceId>" + rt.instance + "</instanceId><instanceOwnerId>123456789012</instanceOwnerId><networkInterfaceId>eni-" + rt.instance + "</networkInterfaceId>")
			}
			b.WriteString("<state>active</state><origin>" + rt.origin + "</origin></item>")
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fake-req</requestId><routeTableSet><item><routeTableId>%s</routeTableId><vpcId>vpc-test</vpcId><ownerId>123456789012</ownerId><routeSet>%s</routeSet><associationSet/><propagatingVgwSet/><tagSet/></item></routeTableSet></DescribeRouteTablesResponse>`, id, b.String())
	case "CreateRoute", "ReplaceRoute", "DeleteRoute":
		id := form.Get("RouteTableId")
		if _, found := f.tables[id]; !found {
			f.fail(w, http.StatusBadRequest, "InvalidRouteTableID.NotFound", "The routeTable ID '"+id+"' does not exist")
			return
		}
		cidr := form.Get("DestinationCidrBlock")
		idx := -1
		for i, rt := range f.tables[id] {
			if rt.cidr == cidr {
				idx = i
			}
		}
		switch {
		case action == "CreateRoute" && idx >= 0:
			f.fail(w, http.StatusBadRequest, "RouteAlreadyExists", "The route identified by "+cidr+" already exists.")
			return
		case action != "CreateRoute" && idx < 0:
			f.fail(w, http.StatusBadRequest, "InvalidRoute.NotFound", "no route with destination-cidr-block "+cidr+" in route table "+id)
			return
		case action != "DeleteRoute" && instance == "":
			f.fail(w, http.StatusBadRequest, "MissingParameter", "a target is required")
			return
		case idx >= 0 && f.tables[id][idx].origin == "CreateRouteTable":
			f.fail(w, http.StatusBadRequest, "InvalidParameterValue", "cannot change the local route")
			return
		}
		switch action {
		case "CreateRoute":
			f.tables[id] = append(f.tables[id], &fakeEC2Route{cidr: cidr, instance: instance, origin: "CreateRoute"})
		case "ReplaceRoute":
			f.tables[id][idx] = &fakeEC2Route{cidr: cidr, instance: instance, origin: "CreateRoute"}
		case "DeleteRoute":
			f.tables[id] = append(f.tables[id][:idx], f.tables[id][idx+1:]...)
		}
		ok(action)
	default:
		f.fail(w, http.StatusBadRequest, "InvalidAction", "The action "+action+" is not valid for this web service.")
	}
}
