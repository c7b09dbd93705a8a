package image

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// The JSON schemas below follow what Glance serves at /v2/schemas/*;
// clients (python-glanceclient in particular) read them to learn which
// attributes are core and which are extra properties.

func strOrNull(desc string, extra map[string]any) map[string]any {
	m := map[string]any{"type": []any{"null", "string"}, "description": desc}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func imageSchema() map[string]any {
	ro := func(m map[string]any) map[string]any { m["readOnly"] = true; return m }
	return map[string]any{
		"name":                 "image",
		"additionalProperties": map[string]any{"type": "string"},
		"links": []any{
			map[string]any{"href": "{self}", "rel": "self"},
			map[string]any{"href": "{file}", "rel": "enclosure"},
			map[string]any{"href": "{schema}", "rel": "describedby"},
		},
		"properties": map[string]any{
			"id": map[string]any{"type": "string", "description": "An identifier for the image",
				"pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
			"name":          strOrNull("Descriptive name for the image", map[string]any{"maxLength": 255}),
			"status":        ro(map[string]any{"type": "string", "description": "Status of the image", "enum": []string{"queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"}}),
			"visibility":    map[string]any{"type": "string", "description": "Scope of image accessibility", "enum": visibilities},
			"protected":     map[string]any{"type": "boolean", "description": "If true, image will not be deletable."},
			"os_hidden":     map[string]any{"type": "boolean", "description": "If true, image will not appear in default image list response."},
			"checksum":      ro(strOrNull("md5 hash of image contents.", map[string]any{"maxLength": 32})),
			"os_hash_algo":  ro(strOrNull("Algorithm to calculate the os_hash_value", map[string]any{"maxLength": 64})),
			"os_hash_value": ro(strOrNull("Hexdigest of the image contents using the algorithm specified by the os_hash_algo", map[string]any{"maxLength": 128})),
			"owner":         strOrNull("Owner of the image", map[string]any{"maxLength": 255}),
			"size":          ro(map[string]any{"type": []any{"null", "integer"}, "description": "Size of image file in bytes"}),
			"virtual_size":  ro(map[string]any{"type": []any{"null", "integer"}, "description": "Virtual size of image in bytes"}),
			"container_format": map[string]any{"type": []any{"null", "string"}, "description": "Format of the container",
				"enum": append([]any{nil}, toAny(containerFormats)...)},
			"disk_format": map[string]any{"type": []any{"null", "string"}, "description": "Format of the disk",
				"enum": append([]any{nil}, toAny(diskFormats)...)},
			"created_at": ro(map[string]any{"type": "string", "description": "Date and time of image registration"}),
			"updated_at": ro(map[string]any{"type": "string", "description": "Date and time of the last image modification"}),
			"tags": map[string]any{"type": "array", "description": "List of strings related to the image",
				"items": map[string]any{"type": "string", "maxLength": 255}},
			"direct_url": ro(map[string]any{"type": "string", "description": "URL to access the image file kept in external store"}),
			"min_ram":    map[string]any{"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
			"min_disk":   map[string]any{"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
			"self":       ro(map[string]any{"type": "string", "description": "An image self url"}),
			"file":       ro(map[string]any{"type": "string", "description": "An image file url"}),
			"schema":     ro(map[string]any{"type": "string", "description": "An image schema url"}),
			"locations": map[string]any{"type": "array", "description": "A set of URLs to access the image file kept in external store",
				"items": map[string]any{"type": "object", "required": []string{"url", "metadata"},
					"properties": map[string]any{"url": map[string]any{"type": "string", "maxLength": 255}, "metadata": map[string]any{"type": "object"}}}},
		},
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func imagesSchema() map[string]any {
	return map[string]any{
		"name": "images",
		"links": []any{
			map[string]any{"href": "{first}", "rel": "first"},
			map[string]any{"href": "{next}", "rel": "next"},
			map[string]any{"href": "{schema}", "rel": "describedby"},
		},
		"properties": map[string]any{
			"images": map[string]any{"type": "array", "items": imageSchema()},
			"first":  map[string]any{"type": "string"},
			"next":   map[string]any{"type": "string"},
			"schema": map[string]any{"type": "string"},
		},
	}
}

func memberSchema() map[string]any {
	return map[string]any{
		"name": "member",
		"properties": map[string]any{
			"image_id":   map[string]any{"type": "string", "description": "An identifier for the image"},
			"member_id":  map[string]any{"type": "string", "description": "An identifier for the image member (tenantId)"},
			"status":     map[string]any{"type": "string", "description": "The status of this image member", "enum": []string{"pending", "accepted", "rejected"}},
			"created_at": map[string]any{"type": "string", "description": "Date and time of image member creation"},
			"updated_at": map[string]any{"type": "string", "description": "Date and time of last modification of image member"},
			"schema":     map[string]any{"type": "string", "readOnly": true},
		},
	}
}

func membersSchema() map[string]any {
	return map[string]any{
		"name":       "members",
		"links":      []any{map[string]any{"href": "{schema}", "rel": "describedby"}},
		"properties": map[string]any{"members": map[string]any{"type": "array", "items": memberSchema()}, "schema": map[string]any{"type": "string"}},
	}
}

func (s *Service) schema(build func() map[string]any) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		return api.JSON(http.StatusOK, build()), nil
	}
}
