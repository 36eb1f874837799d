// routes.go: the REST routes, read from the google.api.http annotations of
// the registered descriptors (the same ones protoc-gen-grpc-gateway turned
// into the generated handlers), so the gateway knows each route's request
// message, path parameters and body before grpc-gateway sees the request.
package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/golang/protobuf/proto"
	descpb "github.com/golang/protobuf/protoc-gen-go/descriptor"
	"google.golang.org/genproto/googleapis/api/annotations"
)

// route is one HTTP binding of an RPC.
type route struct {
	method   string // HTTP method
	template string // e.g. "/api/v1/campaigns/{id}/start"
	parts    []string
	verb     string // after the last ':' of the template, if any
	service  string // e.g. "campaigns.v1.CampaignService"
	rpc      string // e.g. "CreateCampaign"
	input    string // request message, e.g. "campaigns.v1.CreateCampaignRequest"
	output   string // response message
	body     string // "" (none), "*" or a field
	// Client streaming: the body is a sequence of JSON messages.
	clientStreaming bool
	// Server streaming: the answer is a sequence (streams.go serves it).
	serverStreaming bool
}

// successStatus is what a successful answer of the route carries: 201 for
// a create, 204 (no body) for a DELETE, else 200.
func (r *route) successStatus() int {
	switch {
	case r.method == http.MethodDelete:
		return http.StatusNoContent
	case r.method == http.MethodPost &&
		(strings.HasPrefix(r.rpc, "Create") || strings.HasPrefix(r.rpc, "Register")):
		return http.StatusCreated
	}
	return http.StatusOK
}

// splitTemplate turns "/a/{b}/c:verb" into ["a", "{b}", "c"] and "verb".
func splitTemplate(path string) ([]string, string) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	verb := ""
	last := parts[len(parts)-1]
	if i := strings.LastIndex(last, ":"); i > 0 && !strings.HasPrefix(last, "{") {
		parts[len(parts)-1], verb = last[:i], last[i+1:]
	}
	return parts, verb
}

// match returns the path parameters when `parts`/`verb` (a request path
// split as grpc-gateway's mux splits it) fit the template.
func (r *route) match(parts []string, verb string) (map[string]string, bool) {
	if len(parts) != len(r.parts) || verb != r.verb {
		return nil, false
	}
	params := map[string]string{}
	for i, p := range r.parts {
		if strings.HasPrefix(p, "{") {
			if parts[i] == "" {
				return nil, false
			}
			params[strings.Trim(p, "{}")] = parts[i]
		} else if p != parts[i] {
			return nil, false
		}
	}
	return params, true
}

// routeTable is every route of the served services, in the order
// grpc-gateway's mux tries them (services in registration order, RPCs in
// declaration order): the first match wins in both.
type routeTable struct {
	routes []*route
}

// loadRoutes reads the HTTP rules of `services` (full names) from the
// descriptors of `files`.
func loadRoutes(s *schema, files []string, services []string) (*routeTable, error) {
	t := &routeTable{}
	for _, name := range services {
		svc, pkg := findService(s, files, name)
		if svc == nil {
			return nil, fmt.Errorf("no descriptor for service %s", name)
		}
		for _, m := range svc.GetMethod() {
			if m.GetOptions() == nil {
				continue
			}
			ext, err := proto.GetExtension(m.GetOptions(), annotations.E_Http)
			if err != nil {
				continue // no google.api.http: not served over REST
			}
			rule := ext.(*annotations.HttpRule)
			rules := append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...)
			for _, b := range rules {
				method, path := ruleMethod(b)
				if method == "" {
					continue
				}
				parts, verb := splitTemplate(path)
				t.routes = append(t.routes, &route{
					method: method, template: path, parts: parts, verb: verb,
					service:         pkg + "." + svc.GetName(),
					rpc:             m.GetName(),
					input:           typeName(m.GetInputType()),
					output:          typeName(m.GetOutputType()),
					body:            b.GetBody(),
					clientStreaming: m.GetClientStreaming(),
					serverStreaming: m.GetServerStreaming(),
				})
			}
		}
	}
	return t, nil
}

func findService(s *schema, files []string, name string) (*descpb.ServiceDescriptorProto, string) {
	for _, f := range files {
		fd := s.files[f]
		for _, svc := range fd.GetService() {
			if fd.GetPackage()+"."+svc.GetName() == name {
				return svc, fd.GetPackage()
			}
		}
	}
	return nil, ""
}

func ruleMethod(r *annotations.HttpRule) (string, string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// splitRequestPath splits a request path as grpc-gateway's mux does: the
// text after the last ':' of the last segment is a verb.
func splitRequestPath(path string) ([]string, string) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	verb := ""
	last := parts[len(parts)-1]
	if i := strings.LastIndex(last, ":"); i > 0 {
		parts[len(parts)-1], verb = last[:i], last[i+1:]
	}
	return parts, verb
}

// findRoute returns the index of the first of `n` routes (at(i)) that serves
// `method` and `path`, with its path parameters; else -1 and the methods the
// path is served for (for a 405 and its Allow header), sorted.
func findRoute(n int, at func(int) *route, method, path string) (int, map[string]string, []string) {
	parts, verb := splitRequestPath(path)
	var allowed []string
	for i := 0; i < n; i++ {
		r := at(i)
		params, ok := r.match(parts, verb)
		if !ok {
			continue
		}
		if r.method == method {
			return i, params, nil
		}
		if !contains(allowed, r.method) {
			allowed = append(allowed, r.method)
		}
	}
	sort.Strings(allowed)
	return -1, nil, allowed
}

// find returns the route of `method` and `path` with its path parameters,
// or nil and the methods the path is served for.
func (t *routeTable) find(method, path string) (*route, map[string]string, []string) {
	i, params, allowed := findRoute(len(t.routes),
		func(i int) *route { return t.routes[i] }, method, path)
	if i < 0 {
		return nil, nil, allowed
	}
	return t.routes[i], params, nil
}

// pathAliases are the seeds' path prefixes served as campaignd's
// (API.md, "The REST edge"): seed 003's /api/v1/messaging/... and seed
// 004's /api/... (without the version).
func canonicalPath(path string) string {
	const ours = "/api/v1/"
	switch {
	case strings.HasPrefix(path, "/api/v1/messaging/"):
		return ours + strings.TrimPrefix(path, "/api/v1/messaging/")
	case strings.HasPrefix(path, ours):
		return path
	case strings.HasPrefix(path, "/api/"):
		return ours + strings.TrimPrefix(path, "/api/")
	}
	return path
}
