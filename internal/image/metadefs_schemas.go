package image

// JSON schemas of the metadata definitions catalog, as Glance serves them
// at /v2/schemas/metadefs/*.

func mdTime(desc string) map[string]any {
	return map[string]any{"type": "string", "readOnly": true, "description": desc, "format": "date-time"}
}

func mdPropertyDef() map[string]any {
	return map[string]any{
		"type":     "object",
		"required": []string{"title", "type"},
		"properties": map[string]any{
			"name":        map[string]any{"type": "string", "maxLength": 80},
			"title":       map[string]any{"type": "string"},
			"description": map[string]any{"type": "string"},
			"operators":   map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"type":        map[string]any{"type": "string", "enum": propertyTypes},
			"required":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"minimum":     map[string]any{"type": "number"},
			"maximum":     map[string]any{"type": "number"},
			"maxLength":   map[string]any{"type": "integer", "minimum": 0},
			"minLength":   map[string]any{"type": "integer", "minimum": 0},
			"pattern":     map[string]any{"type": "string", "format": "regex"},
			"enum":        map[string]any{"type": "array"},
			"readonly":    map[string]any{"type": "boolean"},
			"default":     map[string]any{},
			"items": map[string]any{"type": "object", "properties": map[string]any{
				"type": map[string]any{"type": "string", "enum": propertyTypes},
				"enum": map[string]any{"type": "array"},
			}},
			"maxItems":        map[string]any{"type": "integer", "minimum": 0},
			"minItems":        map[string]any{"type": "integer", "minimum": 0},
			"uniqueItems":     map[string]any{"type": "boolean", "default": false},
			"additionalItems": map[string]any{"type": "boolean"},
		},
	}
}

func mdRTASchema() map[string]any {
	return map[string]any{
		"name":                 "resource_type_association",
		"additionalProperties": false,
		"required":             []string{"name"},
		"properties": map[string]any{
			"name":              map[string]any{"type": "string", "maxLength": 80, "description": "Resource type names should be aligned with Heat resource types whenever possible: https://docs.openstack.org/heat/latest/template_guide/openstack.html"},
			"prefix":            map[string]any{"type": "string", "maxLength": 80, "description": "Specifies the prefix to use for the given resource type."},
			"properties_target": map[string]any{"type": "string", "maxLength": 80, "description": "Some resource types allow more than one key / value pair per instance."},
			"created_at":        mdTime("Date and time of resource type association"),
			"updated_at":        mdTime("Date and time of the last resource type association modification"),
		},
	}
}

func mdRTAsSchema() map[string]any {
	return map[string]any{
		"name":  "resource_type_associations",
		"links": []any{map[string]any{"rel": "first", "href": "{first}"}, map[string]any{"rel": "next", "href": "{next}"}, map[string]any{"rel": "describedby", "href": "{schema}"}},
		"properties": map[string]any{
			"resource_type_associations": map[string]any{"type": "array", "items": mdRTASchema()},
			"first":                      map[string]any{"type": "string"},
			"next":                       map[string]any{"type": "string"},
			"schema":                     map[string]any{"type": "string"},
		},
	}
}

func mdObjectSchema() map[string]any {
	return map[string]any{
		"name":                 "object",
		"additionalProperties": false,
		"required":             []string{"name"},
		"properties": map[string]any{
			"name":        map[string]any{"type": "string", "maxLength": 80},
			"description": map[string]any{"type": "string"},
			"required":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"properties":  map[string]any{"type": "object", "additionalProperties": mdPropertyDef()},
			"schema":      map[string]any{"type": "string", "readOnly": true},
			"self":        map[string]any{"type": "string", "readOnly": true},
			"created_at":  mdTime("Date and time of object creation"),
			"updated_at":  mdTime("Date and time of the last object modification"),
		},
	}
}

func mdObjectsSchema() map[string]any {
	return map[string]any{
		"name":  "objects",
		"links": []any{map[string]any{"rel": "first", "href": "{first}"}, map[string]any{"rel": "next", "href": "{next}"}, map[string]any{"rel": "describedby", "href": "{schema}"}},
		"properties": map[string]any{
			"objects": map[string]any{"type": "array", "items": mdObjectSchema()},
			"first":   map[string]any{"type": "string"},
			"next":    map[string]any{"type": "string"},
			"schema":  map[string]any{"type": "string"},
		},
	}
}

func mdPropertySchema() map[string]any {
	m := mdPropertyDef()
	m["name"] = "property"
	m["required"] = []string{"name", "title", "type"}
	m["additionalProperties"] = false
	return m
}

func mdPropertiesSchema() map[string]any {
	return map[string]any{
		"name":  "properties",
		"links": []any{map[string]any{"rel": "first", "href": "{first}"}, map[string]any{"rel": "next", "href": "{next}"}, map[string]any{"rel": "describedby", "href": "{schema}"}},
		"properties": map[string]any{
			"properties": map[string]any{"type": "object", "additionalProperties": mdPropertyDef()},
			"first":      map[string]any{"type": "string"},
			"next":       map[string]any{"type": "string"},
			"schema":     map[string]any{"type": "string"},
		},
	}
}

func mdTagSchema() map[string]any {
	return map[string]any{
		"name":                 "tag",
		"additionalProperties": false,
		"required":             []string{"name"},
		"properties": map[string]any{
			"name":       map[string]any{"type": "string", "maxLength": 255},
			"created_at": mdTime("Date and time of tag creation"),
			"updated_at": mdTime("Date and time of the last tag modification"),
		},
	}
}

func mdTagsSchema() map[string]any {
	return map[string]any{
		"name":  "tags",
		"links": []any{map[string]any{"rel": "first", "href": "{first}"}, map[string]any{"rel": "next", "href": "{next}"}, map[string]any{"rel": "describedby", "href": "{schema}"}},
		"properties": map[string]any{
			"tags":   map[string]any{"type": "array", "items": mdTagSchema()},
			"first":  map[string]any{"type": "string"},
			"next":   map[string]any{"type": "string"},
			"schema": map[string]any{"type": "string"},
		},
	}
}

func mdNamespaceSchema() map[string]any {
	return map[string]any{
		"name":                 "namespace",
		"additionalProperties": false,
		"required":             []string{"namespace"},
		"properties": map[string]any{
			"namespace":                  map[string]any{"type": "string", "maxLength": 80, "description": "The unique namespace text."},
			"display_name":               map[string]any{"type": "string", "maxLength": 80, "description": "The user friendly name for the namespace. Used by UI if available."},
			"description":                map[string]any{"type": "string", "maxLength": 500, "description": "Provides a user friendly description of the namespace."},
			"visibility":                 map[string]any{"type": "string", "enum": []string{"public", "private"}, "description": "Scope of namespace accessibility."},
			"protected":                  map[string]any{"type": "boolean", "description": "If true, namespace will not be deletable."},
			"owner":                      map[string]any{"type": "string", "maxLength": 255, "description": "Owner of the namespace."},
			"created_at":                 mdTime("Date and time of namespace creation"),
			"updated_at":                 mdTime("Date and time of the last namespace modification"),
			"schema":                     map[string]any{"type": "string", "readOnly": true},
			"self":                       map[string]any{"type": "string", "readOnly": true},
			"resource_type_associations": map[string]any{"type": "array", "items": mdRTASchema()},
			"properties":                 map[string]any{"type": "object", "additionalProperties": mdPropertyDef()},
			"objects":                    map[string]any{"type": "array", "items": mdObjectSchema()},
			"tags":                       map[string]any{"type": "array", "items": mdTagSchema()},
		},
	}
}

func mdNamespacesSchema() map[string]any {
	return map[string]any{
		"name":  "namespaces",
		"links": []any{map[string]any{"rel": "first", "href": "{first}"}, map[string]any{"rel": "next", "href": "{next}"}, map[string]any{"rel": "describedby", "href": "{schema}"}},
		"properties": map[string]any{
			"namespaces": map[string]any{"type": "array", "items": mdNamespaceSchema()},
			"first":      map[string]any{"type": "string"},
			"next":       map[string]any{"type": "string"},
			"schema":     map[string]any{"type": "string"},
		},
	}
}
