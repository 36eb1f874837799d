// edge.go: what every request goes through before grpc-gateway's mux.
//
//  1. The seeds' path prefixes become campaignd's (canonicalPath).
//  2. The route is found in the route table; an unknown path is a JSON 404,
//     a known path with another method a JSON 405 with Allow.
//  3. Query parameters and the JSON body are checked against the route's
//     request message (schema.go) after the seeds' spellings are rewritten
//     (aliases.go); the canonical JSON is what the mux then decodes.
//  4. The answer's status follows the seeds: 201 for a create, 204 with no
//     body for a delete; no Grpc-Metadata-* or Grpc-Trailer-* header leaks.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	descpb "github.com/golang/protobuf/protoc-gen-go/descriptor"
)

// edge is the gateway's http.Handler. Safe for concurrent use.
type edge struct {
	schema *schema
	routes *routeTable
	next   http.Handler // grpc-gateway's mux
	// Routes the edge serves itself, tried first: the uploads and the
	// server stream (uploads.go, watch.go).
	own ownRoutes
	// Largest body a proto route takes (the generated handlers read bodies
	// whole); uploads stream and have no limit.
	maxBody int64
}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if path := canonicalPath(r.URL.Path); path != r.URL.Path {
		r.URL.Path = path
		r.URL.RawPath = ""
	}
	own, params, ownAllowed := e.own.find(r.Method, r.URL.Path)
	if own != nil {
		own.serve(w, r, params)
		return
	}
	rt, params, allowed := e.routes.find(r.Method, r.URL.Path)
	if rt == nil {
		for _, m := range ownAllowed {
			if !contains(allowed, m) {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			sort.Strings(allowed)
			writeGatewayError(w, &gatewayError{
				status: http.StatusMethodNotAllowed, code: "method_not_allowed",
				msg: fmt.Sprintf("%s is not served for %s; it takes %s",
					r.Method, r.URL.Path, strings.Join(allowed, ", ")),
				header: http.Header{"Allow": {strings.Join(allowed, ", ")}},
			})
			return
		}
		writeGatewayError(w, &gatewayError{status: http.StatusNotFound,
			code: "not_found", msg: "no route for " + r.Method + " " + r.URL.Path})
		return
	}
	query, err := e.checkQuery(rt, params, r.URL.Query())
	if err != nil {
		writeGatewayError(w, invalidRequest(err))
		return
	}
	r.URL.RawQuery = query.Encode()
	body, gerr := e.checkBody(rt, r)
	if gerr != nil {
		writeGatewayError(w, gerr)
		return
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Type", "application/json")
	e.next.ServeHTTP(newResponseWriter(w, rt.successStatus()), r)
}

// checkQuery checks each query parameter against the route's request
// message: a field (by proto or JSON name, dotted for nested fields) that
// is neither a path parameter nor in the body, with a value of its type.
// It returns the parameters under campaignd's names and values.
func (e *edge) checkQuery(rt *route, params map[string]string, q url.Values) (url.Values, error) {
	out := url.Values{}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		values := q[key]
		name := rewriteQueryKey(rt.input, key)
		if rt.body == "*" {
			return nil, newFieldError(key, "unknown query parameter ("+
				rt.method+" "+rt.template+" takes its fields in the JSON body)")
		}
		path := e.schema.fieldPath(rt.input, name)
		if path == nil {
			return nil, newFieldError(key, "unknown query parameter")
		}
		var protoNames []string
		for _, f := range path {
			protoNames = append(protoNames, f.GetName())
		}
		canonical := strings.Join(protoNames, ".")
		if _, isPath := params[protoNames[0]]; isPath || protoNames[0] == rt.body {
			return nil, newFieldError(key, "is set by the path or body, not the query")
		}
		if _, dup := out[canonical]; dup {
			return nil, newFieldError(key, "is given twice (as "+canonical+" too)")
		}
		leaf := path[len(path)-1]
		repeated := leaf.GetLabel() == descpb.FieldDescriptorProto_LABEL_REPEATED
		if e.schema.isMap(leaf) {
			return nil, newFieldError(key, "cannot be given in the query")
		}
		if !repeated && len(values) > 1 {
			return nil, newFieldError(key, "is given more than once")
		}
		for _, v := range values {
			v = rewriteQueryValue(rt.input, canonical, v)
			fixed, err := e.checkQueryValue(leaf, v, key)
			if err != nil {
				return nil, err
			}
			out.Add(canonical, fixed)
		}
	}
	return out, nil
}

// checkQueryValue checks one query value as the JSON value it stands for.
func (e *edge) checkQueryValue(f *descpb.FieldDescriptorProto, v, key string) (string, error) {
	var jv interface{} = v
	switch f.GetType() {
	case descpb.FieldDescriptorProto_TYPE_BOOL:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", newFieldError(key, "must be true or false")
		}
		jv = b
	case descpb.FieldDescriptorProto_TYPE_MESSAGE:
		switch typeName(f.GetTypeName()) {
		case "google.protobuf.Timestamp", "google.protobuf.Duration":
		default:
			return "", newFieldError(key, "names a message; name one of its fields (key.field)")
		}
	}
	out, err := e.schema.checkSingle(f, jv, key)
	if err != nil {
		return "", err
	}
	switch x := out.(type) {
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return v, nil
}

// checkBody reads the body (at most maxBody bytes) and returns it checked
// and rewritten: one JSON message, or for a client-streaming route one
// message after another.
func (e *edge) checkBody(rt *route, r *http.Request) ([]byte, *gatewayError) {
	raw, err := ioutil.ReadAll(io.LimitReader(r.Body, e.maxBody+1))
	if err != nil {
		return nil, &gatewayError{status: http.StatusBadRequest,
			code: "invalid_request", field: "body",
			msg: "body: cannot be read: " + err.Error()}
	}
	if int64(len(raw)) > e.maxBody {
		return nil, &gatewayError{status: http.StatusRequestEntityTooLarge,
			code: "payload_too_large", field: "body",
			msg: fmt.Sprintf("body: is larger than %d bytes (--max-body); "+
				"upload recipient files to POST /api/v1/campaigns/{id}/recipients, which streams", e.maxBody)}
	}
	if rt.body == "" {
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("{}")) {
			return nil, nil
		}
		return nil, invalidRequest(newFieldError("body",
			rt.method+" "+rt.template+" takes no body (its fields go in the path and query)"))
	}
	message := rt.input
	if rt.body != "*" {
		m := e.schema.messages[rt.input]
		f := fieldByJSONKey(m, rt.body)
		message = typeName(f.GetTypeName())
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	for n := 1; ; n++ {
		var v interface{}
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, invalidRequest(newFieldError("body", "malformed JSON: "+jsonErrorText(err, raw)))
		}
		if n > 1 && !rt.clientStreaming {
			return nil, invalidRequest(newFieldError("body",
				"has more than one JSON value (only client-streaming routes take a sequence)"))
		}
		fixed, err := e.checkValue(message, v)
		if err != nil {
			if rt.clientStreaming {
				var fe *fieldError
				if errors.As(err, &fe) {
					fe.msg += fmt.Sprintf(" (in message %d of the stream)", n)
				}
			}
			return nil, invalidRequest(err)
		}
		text, err := json.Marshal(fixed)
		if err != nil {
			return nil, invalidRequest(err)
		}
		out.Write(text)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// checkValue rewrites the seeds' spellings of one JSON message, then checks
// and normalises it.
func (e *edge) checkValue(message string, v interface{}) (interface{}, error) {
	if obj, ok := v.(map[string]interface{}); ok {
		if err := rewriteBody(message, obj); err != nil {
			return nil, err
		}
	}
	return e.schema.checkMessage(message, v, "")
}

// jsonErrorText says where JSON went wrong, by line and column.
func jsonErrorText(err error, raw []byte) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		line, col := 1, 1
		for _, b := range raw[:min64(syntax.Offset, int64(len(raw)))] {
			if b == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return fmt.Sprintf("%s (line %d, column %d)", syntax.Error(), line, col)
	}
	if err == io.ErrUnexpectedEOF {
		return "unexpected end of input"
	}
	return err.Error()
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// ownRoute is a route the edge serves itself rather than grpc-gateway.
type ownRoute struct {
	route
	serve func(w http.ResponseWriter, r *http.Request, params map[string]string)
}

type ownRoutes []*ownRoute

// find is routeTable.find's for the edge's own routes.
func (t ownRoutes) find(method, path string) (*ownRoute, map[string]string, []string) {
	i, params, allowed := findRoute(len(t),
		func(i int) *route { return &t[i].route }, method, path)
	if i < 0 {
		return nil, nil, allowed
	}
	return t[i], params, nil
}

// responseWriter gives a successful answer the route's status (201, 204)
// and keeps gRPC metadata headers away from clients.
type responseWriter struct {
	http.ResponseWriter
	success int
	status  int
}

func newResponseWriter(w http.ResponseWriter, success int) *responseWriter {
	return &responseWriter{ResponseWriter: w, success: success}
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	h := w.Header()
	for k := range h {
		if strings.HasPrefix(k, "Grpc-") || k == "Trailer" {
			h.Del(k)
		}
	}
	if code == http.StatusOK {
		code = w.success
	}
	if code == http.StatusNoContent {
		h.Del("Content-Type")
	}
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status == http.StatusNoContent {
		return len(b), nil // a 204 has no body
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets server-streaming answers (WatchCampaign) go out as they come.
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.WriteHeader(http.StatusOK)
		}
		f.Flush()
	}
}

// CloseNotify is what grpc-gateway 1.6.4 watches to cancel a call whose
// client went away.
func (w *responseWriter) CloseNotify() <-chan bool {
	if cn, ok := w.ResponseWriter.(http.CloseNotifier); ok {
		return cn.CloseNotify()
	}
	return make(chan bool)
}
