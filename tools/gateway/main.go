// campaignd-gateway: the REST/JSON face of campaignd. A grpc-gateway reverse
// proxy that turns the google.api.http annotations of proto/campaigns/v1
// into HTTP routes and forwards each call to campaignd over gRPC.
//
//	campaignd-gateway --listen 127.0.0.1:8080 --backend 127.0.0.1:50051
//
// JSON uses the proto3 names (lowerCamelCase; the original snake_case names
// are accepted too) and lowercase enum names. Errors are
// {"error", "message", "code", "details"} with the google.rpc details
// decoded, the HTTP status mapped from the gRPC code, and Retry-After set
// from campaignd's retry-after trailer.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	campaignsv1 "campaignd/gen/campaigns/v1"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

type register func(context.Context, *runtime.ServeMux, string, []grpc.DialOption) error

var services = []register{
	campaignsv1.RegisterAccountServiceHandlerFromEndpoint,
	campaignsv1.RegisterCampaignServiceHandlerFromEndpoint,
	campaignsv1.RegisterContactServiceHandlerFromEndpoint,
	campaignsv1.RegisterDeliveryServiceHandlerFromEndpoint,
	campaignsv1.RegisterSenderServiceHandlerFromEndpoint,
	campaignsv1.RegisterSuppressionServiceHandlerFromEndpoint,
	campaignsv1.RegisterTemplateServiceHandlerFromEndpoint,
}

// Detail type URLs campaignd sends. ErrorInfo is decoded with our
// wire-compatible campaigns.v1.ErrorInfo: Debian's googleapis predates it.
const (
	errorInfoURL  = "type.googleapis.com/google.rpc.ErrorInfo"
	badRequestURL = "type.googleapis.com/google.rpc.BadRequest"
	retryInfoURL  = "type.googleapis.com/google.rpc.RetryInfo"
)

var detailMarshaler = jsonpb.Marshaler{OrigName: false}

// decodeDetail renders one google.protobuf.Any of a status as a JSON object
// with its "@type", or nil for a type this gateway does not know.
func decodeDetail(typeURL string, value []byte) map[string]interface{} {
	var msg proto.Message
	switch typeURL {
	case errorInfoURL:
		msg = &campaignsv1.ErrorInfo{}
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

// httpError writes a gRPC failure as JSON with its decoded details.
func httpError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler,
	w http.ResponseWriter, _ *http.Request, err error) {
	s, ok := status.FromError(err)
	if !ok {
		s = status.New(2, err.Error()) // UNKNOWN
	}
	details := []interface{}{}
	for _, any := range s.Proto().GetDetails() {
		if d := decodeDetail(any.GetTypeUrl(), any.GetValue()); d != nil {
			details = append(details, d)
		}
	}
	body, _ := json.Marshal(map[string]interface{}{
		"error":   s.Message(),
		"message": s.Message(),
		"code":    int32(s.Code()),
		"details": details,
	})
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		if v := md.TrailerMD.Get("retry-after"); len(v) > 0 {
			w.Header().Set("Retry-After", v[0])
		}
	}
	w.Header().Del("Trailer")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(s.Code()))
	w.Write(body)
}

// apiMarshaler is grpc-gateway's JSONPb with one repair: the golang/protobuf
// 1.3 jsonpb in Debian reads google.protobuf.FieldMask only as an object,
// while proto3 JSON spells it as a string of comma-separated lowerCamelCase
// paths ("name,batchDelay"). Request bodies get their update_mask rewritten
// to {"paths": [...]} with the proto (snake_case) paths campaignd expects.
type apiMarshaler struct {
	runtime.JSONPb
}

// NewDecoder decodes one JSON value per Decode call, so client-streaming
// bodies (one message after another) keep working.
func (m *apiMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	dec := json.NewDecoder(r)
	return runtime.DecoderFunc(func(v interface{}) error {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		return m.JSONPb.Unmarshal(normalizeFieldMask(raw), v)
	})
}

func (m *apiMarshaler) Unmarshal(data []byte, v interface{}) error {
	return m.JSONPb.Unmarshal(normalizeFieldMask(data), v)
}

// snakeCase turns a proto3 JSON path ("batchDelay") into the proto field path
// ("batch_delay"); snake_case input is returned unchanged.
func snakeCase(path string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(path) {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// normalizeFieldMask rewrites a top-level "update_mask"/"updateMask" given as
// a string or as {"paths": [...]} into {"paths": [snake_case...]}. Anything
// else is returned untouched (jsonpb reports what is malformed).
func normalizeFieldMask(data []byte) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return data
	}
	changed := false
	for _, key := range []string{"update_mask", "updateMask"} {
		raw, ok := obj[key]
		if !ok {
			continue
		}
		var paths []string
		var text string
		var object struct {
			Paths []string `json:"paths"`
		}
		if json.Unmarshal(raw, &text) == nil {
			for _, p := range strings.Split(text, ",") {
				if strings.TrimSpace(p) != "" {
					paths = append(paths, p)
				}
			}
		} else if json.Unmarshal(raw, &object) == nil {
			paths = object.Paths
		} else {
			continue
		}
		for i := range paths {
			paths[i] = snakeCase(paths[i])
		}
		if paths == nil {
			paths = []string{}
		}
		fixed, err := json.Marshal(map[string][]string{"paths": paths})
		if err != nil {
			continue
		}
		obj[key] = fixed
		changed = true
	}
	if !changed {
		return data
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return data
	}
	return out
}

// headerMatcher forwards the HTTP headers campaignd reads as metadata
// (Authorization is forwarded by grpc-gateway itself).
func headerMatcher(key string) (string, bool) {
	if strings.EqualFold(key, "X-Api-Key") {
		return "x-api-key", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP address to serve REST/JSON on")
	backend := flag.String("backend", "127.0.0.1:50051", "campaignd's gRPC address")
	caFile := flag.String("backend-ca", "", "PEM CA of campaignd's TLS certificate (empty: plaintext)")
	flag.Parse()

	runtime.HTTPError = httpError
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard,
			&apiMarshaler{runtime.JSONPb{OrigName: false, EmitDefaults: true}}),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
	)
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if *caFile != "" {
		creds, err := credentials.NewClientTLSFromFile(*caFile, "")
		if err != nil {
			log.Fatalf("backend-ca: %v", err)
		}
		opts = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, reg := range services {
		if err := reg(ctx, mux, *backend, opts); err != nil {
			log.Fatalf("register: %v", err)
		}
	}

	server := &http.Server{Addr: *listen, Handler: mux}
	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		server.Shutdown(shutdownCtx)
		close(done)
	}()
	log.Printf("campaignd-gateway listening on %s, backend %s", *listen, *backend)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-done
}
