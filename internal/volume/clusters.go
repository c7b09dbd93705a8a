package volume

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Clusters (3.7) group cinder-volume services of one backend for
// active/active HA. Nimbus runs one volume agent per storage host and
// never clusters them (each host owns its files), so no service belongs
// to a cluster: the lists are empty, as Cinder's are without
// [DEFAULT] cluster set, and naming a cluster is a 404.

func clusterNotFound(name string) error {
	return api.NotFound("Cluster %s could not be found.", name)
}

func (s *Service) listClusters(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"clusters": []any{}}), nil
}

func (s *Service) showCluster(r *http.Request) (*api.Response, error) {
	return nil, clusterNotFound(r.PathValue("cluster_name"))
}

// updateCluster serves PUT /clusters/enable|disable (the route shares
// its wildcard with show's): the body must name the cluster, which
// cannot exist.
func (s *Service) updateCluster(r *http.Request) (*api.Response, error) {
	switch action := r.PathValue("cluster_name"); action {
	case "enable", "disable":
	default:
		return nil, api.NotFound("Unknown action %s.", action)
	}
	var body struct {
		Name           *string `json:"name"`
		Binary         *string `json:"binary"`
		DisabledReason *string `json:"disabled_reason"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Name == nil || *body.Name == "" {
		return nil, api.BadRequest("Missing required element 'name' in request body.")
	}
	return nil, clusterNotFound(*body.Name)
}

// listManageable serves GET /manageable_volumes and
// /manageable_snapshots[/detail] (3.8): what a backend holds that Cinder
// does not manage. The storage host must exist (host, or from 3.17 one
// of host and cluster); its file backend keeps only files it made
// itself, so it lists nothing, as Cinder does for a driver without
// listing support.
func (s *Service) listManageable(collection string) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		q := r.URL.Query()
		host, cluster := q.Get("host"), q.Get("cluster")
		if atLeast(r, 17) {
			if (host == "") == (cluster == "") {
				return nil, api.BadRequest("One and only one of cluster and host must be set.")
			}
			if cluster != "" {
				return nil, clusterNotFound(cluster)
			}
		} else if host == "" {
			return nil, api.BadRequest("Host field is missing.")
		}
		hosts, err := s.listHostNames(r)
		if err != nil {
			return nil, err
		}
		if !containsStr(hosts, host) {
			return nil, api.NotFound("Service %s could not be found.", host)
		}
		return api.JSON(http.StatusOK, map[string]any{collection: []any{}}), nil
	}
}

// listHostNames are the cinder-volume service hosts (host@backend) and
// their bare host names, which Cinder's host lookups accept.
func (s *Service) listHostNames(r *http.Request) ([]string, error) {
	rows, err := s.db.Query(r.Context(), `SELECT host, backend FROM volume_services`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h, b string
		if err := rows.Scan(&h, &b); err != nil {
			return nil, err
		}
		out = append(out, h, h+"@"+b)
	}
	return out, rows.Err()
}
