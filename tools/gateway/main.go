// campaignd-gateway: the REST/JSON face of campaignd. A grpc-gateway reverse
// proxy that turns the google.api.http annotations of proto/campaigns/v1
// into HTTP routes and forwards each call to campaignd over gRPC, with the
// seeds' REST conventions at its edge (API.md, "The REST edge"):
//
//		campaignd-gateway --listen 127.0.0.1:8080 --backend 127.0.0.1:50051
//
//	  - edge.go: path aliases, strict JSON (schema.go) and the seeds'
//	    spellings (aliases.go), statuses 201/204, no gRPC headers to clients;
//	  - uploads.go: seed 000's multipart and seed 004's JSON recipient
//	    uploads, streamed into ImportRecipients;
//	  - errors.go: every error as {"error", "message", "field", "details"}.
//
// JSON uses the proto3 names (lowerCamelCase; the original snake_case names
// are accepted too) and lowercase enum names.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	campaignsv1 "campaignd/gen/campaigns/v1"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

type register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error

// services in the order their routes are tried (routes.go keeps the same).
var services = []struct {
	name     string
	register register
}{
	{"campaigns.v1.AccountService", campaignsv1.RegisterAccountServiceHandler},
	{"campaigns.v1.CampaignService", campaignsv1.RegisterCampaignServiceHandler},
	{"campaigns.v1.ContactService", campaignsv1.RegisterContactServiceHandler},
	{"campaigns.v1.DeliveryService", campaignsv1.RegisterDeliveryServiceHandler},
	{"campaigns.v1.SenderService", campaignsv1.RegisterSenderServiceHandler},
	{"campaigns.v1.SuppressionService", campaignsv1.RegisterSuppressionServiceHandler},
	{"campaigns.v1.TemplateService", campaignsv1.RegisterTemplateServiceHandler},
}

// protoFiles are the files whose descriptors describe the routes.
var protoFiles = []string{
	"campaigns/v1/account.proto", "campaigns/v1/campaign.proto",
	"campaigns/v1/common.proto", "campaigns/v1/contact.proto",
	"campaigns/v1/delivery.proto", "campaigns/v1/sender.proto",
	"campaigns/v1/suppression.proto", "campaigns/v1/template.proto",
}

// headerMatcher forwards the HTTP headers campaignd reads as metadata
// (Authorization is forwarded by grpc-gateway itself): the API key headers
// of the seeds and X-Auth-ID, which campaignd checks against the key.
func headerMatcher(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "x-api-key", "x-auth-token", "x-auth-id":
		return strings.ToLower(key), true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// noHeaders keeps campaignd's response metadata away from clients.
func noHeaders(string) (string, bool) { return "", false }

// newHandler wires the edge in front of grpc-gateway's mux on `conn`.
func newHandler(ctx context.Context, conn *grpc.ClientConn, maxBody int64) (http.Handler, error) {
	runtime.HTTPError = httpError
	runtime.OtherErrorHandler = otherError
	marshaler := &runtime.JSONPb{OrigName: false, EmitDefaults: true}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithOutgoingHeaderMatcher(noHeaders),
	)
	var names []string
	for _, s := range services {
		if err := s.register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("register %s: %v", s.name, err)
		}
		names = append(names, s.name)
	}
	sch, err := loadSchema(protoFiles)
	if err != nil {
		return nil, err
	}
	routes, err := loadRoutes(sch, protoFiles, names)
	if err != nil {
		return nil, err
	}
	e := &edge{schema: sch, routes: routes, next: mux, maxBody: maxBody}
	e.own = append(e.own, uploadRoutes(&uploads{
		client:    campaignsv1.NewCampaignServiceClient(conn),
		mux:       mux,
		marshaler: marshaler,
	})...)
	e.own = append(e.own, streamRoutes(&streams{
		conn: conn, mux: mux, marshaler: marshaler, edge: e,
	}, routes)...)
	return e, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP address to serve REST/JSON on")
	backend := flag.String("backend", "127.0.0.1:50051", "campaignd's gRPC address")
	caFile := flag.String("backend-ca", "", "PEM CA of campaignd's TLS certificate (empty: plaintext)")
	maxBody := flag.Int64("max-body", 8<<20, "largest JSON body in bytes (uploads stream and have no limit)")
	aliases := flag.Bool("aliases", false, "print the seeds' spellings this gateway rewrites (a Markdown table) and exit")
	flag.Parse()
	if *aliases {
		fmt.Print(aliasTable())
		return
	}

	opts := []grpc.DialOption{grpc.WithInsecure()}
	if *caFile != "" {
		creds, err := credentials.NewClientTLSFromFile(*caFile, "")
		if err != nil {
			log.Fatalf("backend-ca: %v", err)
		}
		opts = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	}
	// Uploads stream whole files: no per-message limit on what we send.
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := grpc.DialContext(ctx, *backend, opts...)
	if err != nil {
		log.Fatalf("backend %s: %v", *backend, err)
	}
	defer conn.Close()
	handler, err := newHandler(ctx, conn, *maxBody)
	if err != nil {
		log.Fatalf("%v", err)
	}

	server := &http.Server{Addr: *listen, Handler: handler}
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
