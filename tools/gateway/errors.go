// errors.go: every error the gateway answers, as the seeds' JSON body
//
//	{"error": "<reason in lowercase>", "message": "...", "field": "...",
//	 "details": [ErrorInfo, BadRequest, RetryInfo decoded]}
//
// with the HTTP status mapped from the gRPC code and ErrorInfo reason
// (API.md, "The REST edge"). Errors campaignd returns keep its details;
// errors the gateway raises itself (unknown route, bad JSON, unknown field,
// bad upload) get the same shape with details of their own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes"
	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Detail type URLs campaignd sends.
const (
	errorInfoURL  = "type.googleapis.com/google.rpc.ErrorInfo"
	badRequestURL = "type.googleapis.com/google.rpc.BadRequest"
	retryInfoURL  = "type.googleapis.com/google.rpc.RetryInfo"
	errorDomain   = "campaigns.v1"
)

// fieldError is a request problem the gateway finds itself, naming the field
// (a JSON path such as "prices[0].unit_price", or a query parameter).
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func newFieldError(field, msg string) *fieldError {
	return &fieldError{field: field, msg: msg}
}

// gatewayError is an error the gateway answers without asking campaignd:
// an HTTP status and the lowercase error code of the body.
type gatewayError struct {
	status int
	code   string // e.g. "not_found", "method_not_allowed"
	msg    string
	field  string
	header http.Header // extra response headers (Allow)
}

func (e *gatewayError) Error() string { return e.msg }

// invalidRequest is the gateway's 400 for a request it will not forward.
func invalidRequest(err error) *gatewayError {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &gatewayError{status: http.StatusBadRequest,
			code: "invalid_request", msg: fe.Error(), field: fe.field}
	}
	return &gatewayError{status: http.StatusBadRequest,
		code: "invalid_request", msg: err.Error()}
}

// httpStatus maps a gRPC code (and the ErrorInfo reason, which tells the
// FAILED_PRECONDITION cases apart) to the seeds' HTTP status.
func httpStatus(code codes.Code, reason string) int {
	switch code {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.FailedPrecondition:
		if reason == "ILLEGAL_TRANSITION" {
			return http.StatusConflict
		}
		// VALIDATION_ERROR, INSUFFICIENT_CREDITS.
		return http.StatusUnprocessableEntity
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

var detailMarshaler = jsonpb.Marshaler{OrigName: false}

// decodeDetail renders one google.protobuf.Any of a status as a JSON object
// with its "@type", or nil for a type this gateway does not know.
func decodeDetail(typeURL string, value []byte) map[string]interface{} {
	var msg proto.Message
	switch typeURL {
	case errorInfoURL:
		msg = &errdetails.ErrorInfo{}
	case badRequestURL:
		msg = &errdetails.BadRequest{}
	case retryInfoURL:
		msg = &errdetails.RetryInfo{}
	default:
		return nil
	}
	if err := proto.Unmarshal(value, msg); err != nil {
		return nil
	}
	text, err := detailMarshaler.MarshalToString(msg)
	if err != nil {
		return nil
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil
	}
	out["@type"] = typeURL
	return out
}

// fieldPrefix reads the field a message starts with ("limit: must be ...").
var fieldPrefix = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.\[\]-]*): `)

// errorBody is the JSON of every error answer.
func errorBody(code, message, field string, details []interface{}) []byte {
	body := map[string]interface{}{
		"error":   code,
		"message": message,
		"details": details,
	}
	if field != "" {
		body["field"] = field
	}
	out, _ := json.Marshal(body)
	return out
}

// writeJSONError writes an error answer; headers already set on w (such as
// Retry-After) are kept.
func writeJSONError(w http.ResponseWriter, httpCode int, code, message,
	field string, details []interface{}) {
	if details == nil {
		details = []interface{}{}
	}
	h := w.Header()
	h.Del("Trailer")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpCode)
	w.Write(errorBody(code, message, field, details))
}

// gatewayDetails are the details of an error the gateway raises: the same
// ErrorInfo (and BadRequest) campaignd would have sent for it.
func gatewayDetails(reason, field, msg string) []interface{} {
	info := map[string]interface{}{
		"@type": errorInfoURL, "reason": reason, "domain": errorDomain,
	}
	details := []interface{}{info}
	if field != "" {
		info["metadata"] = map[string]string{"field": field}
		description := strings.TrimPrefix(msg, field+": ")
		details = append(details, map[string]interface{}{
			"@type": badRequestURL,
			"fieldViolations": []interface{}{map[string]string{
				"field": field, "description": description}},
		})
	}
	return details
}

// writeGatewayError answers an error the gateway raised itself.
func writeGatewayError(w http.ResponseWriter, e *gatewayError) {
	for k, vs := range e.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	writeJSONError(w, e.status, e.code, e.msg, e.field,
		gatewayDetails(strings.ToUpper(e.code), e.field, e.msg))
}

// statusAnswer is a gRPC status as the edge answers it.
type statusAnswer struct {
	httpCode   int
	code       string // the body's "error": the reason in lowercase
	message    string
	field      string
	details    []interface{}
	retryAfter string // seconds; "" when the status says nothing
}

// answerFor reads a gRPC status: campaignd's (with its details and its
// retry-after trailer) or one made on this side of the connection.
func answerFor(s *status.Status, trailer map[string][]string) statusAnswer {
	a := statusAnswer{message: s.Message(), details: []interface{}{}}
	if v := trailer["retry-after"]; len(v) > 0 {
		a.retryAfter = v[0]
	}
	reason := ""
	for _, any := range s.Proto().GetDetails() {
		d := decodeDetail(any.GetTypeUrl(), any.GetValue())
		if d == nil {
			continue
		}
		a.details = append(a.details, d)
		switch any.GetTypeUrl() {
		case errorInfoURL:
			reason, _ = d["reason"].(string)
			if md, ok := d["metadata"].(map[string]interface{}); ok {
				if f, ok := md["field"].(string); ok && a.field == "" {
					a.field = f
				}
			}
		case badRequestURL:
			var br errdetails.BadRequest
			if proto.Unmarshal(any.GetValue(), &br) == nil &&
				len(br.GetFieldViolations()) > 0 && a.field == "" {
				a.field = br.GetFieldViolations()[0].GetField()
			}
		case retryInfoURL:
			var ri errdetails.RetryInfo
			if proto.Unmarshal(any.GetValue(), &ri) == nil && a.retryAfter == "" {
				if d, err := ptypes.Duration(ri.GetRetryDelay()); err == nil {
					secs := int64((d + 999999999) / 1000000000)
					if secs < 1 {
						secs = 1
					}
					a.retryAfter = strconv.FormatInt(secs, 10)
				}
			}
		}
	}
	if reason == "" {
		// Raised on this side of the connection: by the generated handlers
		// (a request they could not read) or by gRPC (campaignd down).
		reason = defaultReason(s.Code())
		if s.Code() == codes.InvalidArgument {
			if m := fieldPrefix.FindStringSubmatch(s.Message()); m != nil {
				a.field = m[1]
			}
		}
		a.details = gatewayDetails(reason, a.field, s.Message())
	}
	a.httpCode = httpStatus(s.Code(), reason)
	a.code = strings.ToLower(reason)
	return a
}

// writeStatusError answers a gRPC status (see answerFor).
func writeStatusError(w http.ResponseWriter, s *status.Status,
	trailer map[string][]string) {
	a := answerFor(s, trailer)
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	writeJSONError(w, a.httpCode, a.code, a.message, a.field, a.details)
}

// defaultReason names an error that carries no ErrorInfo.
func defaultReason(code codes.Code) string {
	switch code {
	case codes.InvalidArgument, codes.OutOfRange:
		return "INVALID_REQUEST"
	case codes.Unauthenticated:
		return "UNAUTHORIZED"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.Canceled:
		return "CANCELLED"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	}
	return "INTERNAL"
}

// httpError is grpc-gateway's error hook (runtime.HTTPError): every failed
// forwarded call comes through here.
func httpError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler,
	w http.ResponseWriter, _ *http.Request, err error) {
	var ge *gatewayError
	if errors.As(err, &ge) {
		writeGatewayError(w, ge)
		return
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.New(codes.Unknown, err.Error())
	}
	var trailer map[string][]string
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		trailer = md.TrailerMD
	}
	writeStatusError(w, s, trailer)
}

// otherError is grpc-gateway's hook for errors outside a call
// (runtime.OtherErrorHandler): routes this gateway's own router let through.
func otherError(w http.ResponseWriter, _ *http.Request, msg string, code int) {
	name := "invalid_request"
	switch code {
	case http.StatusNotFound:
		name = "not_found"
	case http.StatusMethodNotAllowed:
		name = "method_not_allowed"
	}
	writeGatewayError(w, &gatewayError{status: code, code: name, msg: msg})
}
