package ogc

import (
	"net/http"
	"strconv"
)

var itoa = strconv.Itoa

// openAPI answers the OpenAPI 3.0 document (service-desc). Each items
// path lists its parameters, the limit with its maximum and the filter
// languages, because GDAL reads them from here.
func (s *Service) openAPI(w http.ResponseWriter, r *http.Request) {
	if !s.metaQuery(w, r) {
		return
	}
	writeJSON(w, mediaOpenAPI, s.openAPIDoc(base(r)))
}

func (s *Service) openAPIDoc(b string) map[string]any {
	jsonResp := func(desc, media string) map[string]any {
		return map[string]any{
			"200": map[string]any{"description": desc, "content": map[string]any{media: map[string]any{"schema": map[string]any{"type": "object"}}}},
			"400": map[string]any{"$ref": "#/components/responses/BadRequest"},
			"401": map[string]any{"$ref": "#/components/responses/Unauthorized"},
			"404": map[string]any{"$ref": "#/components/responses/NotFound"},
		}
	}
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/parameters/" + name} }
	get := func(id, summary string, params []any, resp map[string]any) map[string]any {
		return map[string]any{"get": map[string]any{"operationId": id, "summary": summary, "parameters": params, "responses": resp}}
	}
	paths := map[string]any{
		"/":            get("getLandingPage", "Landing page", []any{ref("f")}, jsonResp("Links to the API, conformance and collections", mediaJSON)),
		"/api":         get("getAPI", "This document", []any{ref("f")}, jsonResp("The API definition", mediaOpenAPI)),
		"/conformance": get("getConformance", "Conformance classes", []any{ref("f")}, jsonResp("The conformance classes", mediaJSON)),
		"/collections": get("getCollections", "Feature collections", []any{ref("f")}, jsonResp("The collections", mediaJSON)),
	}
	for _, c := range s.cols {
		p := "/collections/" + c.id
		paths[p] = get("describe_"+c.id, c.title, []any{ref("f")}, jsonResp("The "+c.id+" collection", mediaJSON))
		paths[p+"/queryables"] = get("queryables_"+c.id, "What a filter on "+c.id+" may name",
			[]any{ref("f")}, jsonResp("JSON Schema of the queryables", mediaSchema))
		params := []any{ref("limit"), ref("bbox"), ref("bbox-crs"), ref("crs"), ref("filter"), ref("filter-lang"),
			ref("filter-crs"), ref("cursor"), ref("f")}
		if c.temporal != "" {
			params = append(params, ref("datetime"))
		}
		for _, q := range c.queryables {
			schema := map[string]any{"type": q.typ}
			if q.typ == typeDateTime {
				schema = map[string]any{"type": "string", "format": "date-time"}
			}
			if len(q.enum) > 0 {
				schema["enum"] = q.enum
			}
			params = append(params, map[string]any{"name": q.name, "in": "query", "required": false, "style": "form",
				"explode": false, "description": q.title + " equals this value", "schema": schema})
		}
		paths[p+"/items"] = get("items_"+c.id, c.title+" as GeoJSON features", params, jsonResp("A page of features", mediaGeoJSON))
		paths[p+"/items/{featureId}"] = get("item_"+c.id, "One of "+c.id,
			[]any{map[string]any{"name": "featureId", "in": "path", "required": true, "schema": map[string]any{"type": "string"}}, ref("crs"), ref("f")},
			jsonResp("A feature", mediaGeoJSON))
	}
	crsEnum := crsURIs()
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{mediaJSON: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title": "Hanoi city operations centre – OGC API Features", "version": "1.0.0",
			"description": "Incidents, devices and wards. Send a bearer token (Authorization: Bearer ...). Page size: default " +
				itoa(DefaultLimit) + ", maximum " + itoa(MaxLimit) + "; a larger limit is served at the maximum with a next link.",
		},
		"servers":  []any{map[string]any{"url": b}},
		"security": []any{map[string]any{"bearer": []string{}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"parameters": map[string]any{
				"limit": map[string]any{"name": "limit", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "Features per page; above the maximum, the maximum is served with a next link.",
					"schema":      map[string]any{"type": "integer", "minimum": 1, "maximum": MaxLimit, "default": DefaultLimit}},
				"bbox": map[string]any{"name": "bbox", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "minx,miny,maxx,maxy in bbox-crs axis order (CRS84: lon,lat; EPSG:4326: lat,lon; EPSG:3405: easting,northing)",
					"schema":      map[string]any{"type": "array", "minItems": 4, "maxItems": 6, "items": map[string]any{"type": "number"}}},
				"bbox-crs": map[string]any{"name": "bbox-crs", "in": "query", "required": false,
					"schema": map[string]any{"type": "string", "format": "uri", "enum": crsEnum, "default": crs84.uri}},
				"crs": map[string]any{"name": "crs", "in": "query", "required": false,
					"schema": map[string]any{"type": "string", "format": "uri", "enum": crsEnum, "default": crs84.uri}},
				"datetime": map[string]any{"name": "datetime", "in": "query", "required": false, "style": "form", "explode": false,
					"description": "An instant or a closed or half-open interval (start/end, .. for an open end)",
					"schema":      map[string]any{"type": "string"}},
				"filter": map[string]any{"name": "filter", "in": "query", "required": false,
					"description": "CQL2 text over the collection's queryables: = <> < <= > >=, AND OR NOT, IS NULL, LIKE, IN, BETWEEN (at most " +
						itoa(maxFilterPredicates) + " predicates, nesting " + itoa(maxFilterDepth) + ")",
					"schema": map[string]any{"type": "string", "maxLength": maxFilterBytes}},
				// cql-text is the draft's name for the same text encoding; GDAL
				// before 3.7 sends filters only to servers that list it.
				"filter-lang": map[string]any{"name": "filter-lang", "in": "query", "required": false,
					"description": "cql2-text; cql-text (the draft's name, GDAL before 3.7) is read as cql2-text",
					"schema":      map[string]any{"type": "string", "enum": []string{"cql2-text", "cql-text"}, "default": "cql2-text"}},
				"filter-crs": map[string]any{"name": "filter-crs", "in": "query", "required": false,
					"schema": map[string]any{"type": "string", "format": "uri", "enum": []string{crs84.uri}}},
				"cursor": map[string]any{"name": "cursor", "in": "query", "required": false,
					"description": "Opaque; taken from a next or prev link", "schema": map[string]any{"type": "string"}},
				"f": map[string]any{"name": "f", "in": "query", "required": false,
					"schema": map[string]any{"type": "string", "enum": []string{"json", "geojson"}}},
			},
			"schemas": map[string]any{
				"Error": map[string]any{"type": "object", "properties": map[string]any{"error": map[string]any{"type": "object",
					"properties": map[string]any{"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}}}}},
			},
			"responses": map[string]any{
				"BadRequest":   errResp("A malformed parameter or filter"),
				"Unauthorized": errResp("No or bad credentials"),
				"NotFound":     errResp("No such collection or feature (or outside your wards)"),
			},
		},
	}
}
