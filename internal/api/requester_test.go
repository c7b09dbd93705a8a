package api_test

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

func TestRequester(t *testing.T) {
	admin := &api.Identity{Token: "tok", UserID: "u1", ProjectID: "p1", Roles: []api.Role{{ID: "r1", Name: "admin"}}}
	member := &api.Identity{UserID: "u2", ProjectID: "p2", Roles: []api.Role{{ID: "r2", Name: "member"}}}
	for _, tc := range []struct {
		name   string
		policy api.Authorizer
		id     *api.Identity
		header string
		want   api.Requester
	}{
		{name: "unauthenticated", id: nil, want: api.Requester{}},
		{name: "admin role, no policy", id: admin, want: api.Requester{ProjectID: "p1", UserID: "u1", Token: "tok", Admin: true}},
		{name: "member, no policy; token from the header", id: member, header: "hdr",
			want: api.Requester{ProjectID: "p2", UserID: "u2", Token: "hdr"}},
		{name: "policy allows context_is_admin", policy: &fakeAuthorizer{allow: map[string]bool{"context_is_admin": true}}, id: member,
			want: api.Requester{ProjectID: "p2", UserID: "u2", Admin: true}},
		{name: "policy denies the admin role", policy: &fakeAuthorizer{}, id: admin,
			want: api.Requester{ProjectID: "p1", UserID: "u1", Token: "tok"}},
		{name: "policy fails", policy: &fakeAuthorizer{err: errors.New("broken")}, id: admin,
			want: api.Requester{ProjectID: "p1", UserID: "u1", Token: "tok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &api.Service{Policy: tc.policy}
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("X-Auth-Token", tc.header)
			}
			if tc.id != nil {
				r = r.WithContext(api.WithCaller(r.Context(), tc.id))
			}
			if got := s.Requester(r); got != tc.want {
				t.Fatalf("Requester = %+v, want %+v", got, tc.want)
			}
		})
	}
}
