// streams.go: server-streaming RPCs (WatchCampaign) over HTTP.
//
// The answer is what grpc-gateway sends, one JSON line a message,
// {"result": <message>}, flushed as it comes, but with the edge's errors: a
// failure before the first message is the seeds' error body with its status
// (grpc-gateway would send its own shape and status); one after it is a last
// line {"error": "<reason>", "message": ..., "details": [...]}, the status
// being sent already.
package main

import (
	"context"
	"io"
	"net/http"
	"reflect"

	"github.com/golang/protobuf/proto"
	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// streams serves the routes of server-streaming RPCs. Safe for concurrent
// use.
type streams struct {
	conn      *grpc.ClientConn
	mux       *runtime.ServeMux // to turn HTTP headers into gRPC metadata
	marshaler runtime.Marshaler
	edge      *edge // for the query check
}

// streamRoutes are `table`'s server-streaming routes, served by `s`.
func streamRoutes(s *streams, table *routeTable) []*ownRoute {
	var out []*ownRoute
	for _, rt := range table.routes {
		if !rt.serverStreaming || rt.clientStreaming {
			continue
		}
		rt := rt
		out = append(out, &ownRoute{route: *rt,
			serve: func(w http.ResponseWriter, r *http.Request, params map[string]string) {
				s.serve(rt, w, r, params)
			}})
	}
	return out
}

func newMessage(name string) (proto.Message, bool) {
	t := proto.MessageType(name)
	if t == nil {
		return nil, false
	}
	m, ok := reflect.New(t.Elem()).Interface().(proto.Message)
	return m, ok
}

func (s *streams) serve(rt *route, w http.ResponseWriter, r *http.Request, params map[string]string) {
	query, err := s.edge.checkQuery(rt, params, r.URL.Query())
	if err != nil {
		writeGatewayError(w, invalidRequest(err))
		return
	}
	if _, gerr := s.edge.checkBody(rt, r); gerr != nil { // none is taken
		writeGatewayError(w, gerr)
		return
	}
	req, ok1 := newMessage(rt.input)
	newResponse := func() proto.Message { m, _ := newMessage(rt.output); return m }
	if !ok1 || newResponse() == nil {
		writeStatusError(w, status.New(codes.Internal, "gateway: no Go type for "+rt.input), nil)
		return
	}
	for name, value := range params {
		if err := runtime.PopulateFieldFromPath(req, name, value); err != nil {
			writeGatewayError(w, invalidRequest(newFieldError(name, err.Error())))
			return
		}
	}
	if err := runtime.PopulateQueryParameters(req, query, utilities.NewDoubleArray(nil)); err != nil {
		writeGatewayError(w, invalidRequest(err))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel() // the client went away or the stream ended: end the call
	md, err := runtime.AnnotateContext(ctx, s.mux, r)
	if err != nil {
		writeStatusError(w, status.Convert(err), nil)
		return
	}
	stream, err := s.conn.NewStream(md, &grpc.StreamDesc{ServerStreams: true},
		"/"+rt.service+"/"+rt.rpc)
	if err == nil {
		err = stream.SendMsg(req)
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err != nil {
		writeStatusError(w, status.Convert(err), nil)
		return
	}
	flusher, _ := w.(http.Flusher)
	started := false
	for {
		msg := newResponse()
		err := stream.RecvMsg(msg)
		if err == io.EOF {
			return
		}
		if err != nil {
			st := status.Convert(err)
			if !started {
				writeStatusError(w, st, stream.Trailer())
				return
			}
			// The status line went out with the first message: the error
			// is the stream's last line.
			a := answerFor(st, stream.Trailer())
			w.Write(append(errorBody(a.code, a.message, a.field, a.details), '\n'))
			return
		}
		line, merr := s.marshaler.Marshal(map[string]proto.Message{"result": msg})
		if merr != nil {
			return
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
		}
		if _, werr := w.Write(append(line, '\n')); werr != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}
