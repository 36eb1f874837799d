// uploads.go: the seeds' recipient uploads, streamed into ImportRecipients.
//
//	POST /api/v1/campaigns/{id}/recipients         seed 000: -F file=@x.csv
//	POST /api/v1/campaigns/{id}/recipients/import  seed 004: {"recipients": [...]}
//
// Both routes take the same bodies, told apart by Content-Type:
// multipart/form-data (a `file` field, CSV or JSON, and optionally
// `default_region`, `request_id` and `format` fields before it),
// application/json (rows: an array, {"recipients": [...]} or one object a
// line) or text/csv. `default_region`, `request_id` and `format` may also be
// query parameters. The body is read as it arrives and forwarded in 64 KiB
// CSV chunks or 1,000-row messages, so memory does not grow with the file.
// The import is all or nothing: a bad row shape, a malformed file, a client
// that goes away or a failed import cancels the stream and campaignd keeps
// nothing of it. The answer is ImportRecipients' (counts and row errors).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	campaignsv1 "campaignd/gen/campaigns/v1"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	uploadChunkBytes  = 64 * 1024
	uploadRowsPerSend = 1000
	// Bytes a form field other than the file may have.
	uploadFieldBytes = 1024
)

// uploadOptions are the import settings besides the file.
type uploadOptions struct {
	values map[string]string // default_region, request_id, format
}

var uploadOptionNames = []string{"default_region", "request_id", "format"}

func (o *uploadOptions) set(name, value, where string) error {
	if _, dup := o.values[name]; dup {
		return newFieldError(name, "is given twice ("+where+" too)")
	}
	o.values[name] = value
	return nil
}

// uploads serves the upload routes. Safe for concurrent use.
type uploads struct {
	client    campaignsv1.CampaignServiceClient
	mux       *runtime.ServeMux // to turn HTTP headers into gRPC metadata
	marshaler runtime.Marshaler
}

// uploadRoutes are the two upload paths, served by `u`.
func uploadRoutes(u *uploads) []*ownRoute {
	var out []*ownRoute
	for _, path := range []string{
		"/api/v1/campaigns/{id}/recipients",
		"/api/v1/campaigns/{id}/recipients/import",
	} {
		parts, verb := splitTemplate(path)
		out = append(out, &ownRoute{
			route: route{method: http.MethodPost, template: path, parts: parts,
				verb: verb, rpc: "ImportRecipients"},
			serve: u.serve,
		})
	}
	return out
}

// importStream is one ImportRecipients call being fed.
type importStream struct {
	stream campaignsv1.CampaignService_ImportRecipientsClient
	closed bool // the server ended the stream early: its status says why
}

func (s *importStream) send(req *campaignsv1.ImportRecipientsRequest) {
	if s.closed {
		return
	}
	if err := s.stream.Send(req); err != nil {
		// io.EOF: campaignd ended the call (CloseAndRecv has its status).
		s.closed = true
	}
}

func (u *uploads) serve(w http.ResponseWriter, req *http.Request, params map[string]string) {
	ctx, cancel := context.WithCancel(req.Context())
	// Whatever way out, a stream that was not finished is cancelled, and
	// campaignd rolls its rows back.
	defer cancel()
	opts := &uploadOptions{values: map[string]string{}}
	for key, values := range req.URL.Query() {
		if !contains(uploadOptionNames, key) {
			writeGatewayError(w, invalidRequest(newFieldError(key, "unknown query parameter (an upload takes "+
				strings.Join(uploadOptionNames, ", ")+")")))
			return
		}
		if len(values) > 1 {
			writeGatewayError(w, invalidRequest(newFieldError(key, "is given more than once")))
			return
		}
		opts.set(key, values[0], "query")
	}
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var src io.Reader
	var format string
	var form *multipart.Reader
	switch mediaType {
	case "multipart/form-data":
		mr, err := req.MultipartReader()
		if err != nil {
			writeGatewayError(w, invalidRequest(newFieldError("body", "is not a multipart form: "+err.Error())))
			return
		}
		form = mr
		file, ferr := readFormUntilFile(mr, opts)
		if ferr != nil {
			writeGatewayError(w, invalidRequest(ferr))
			return
		}
		src = file
		format = formatOf(file.Header.Get("Content-Type"), file.FileName())
	case "application/json", "application/x-ndjson", "application/jsonl", "application/x-jsonlines", "text/json":
		src, format = req.Body, "json"
	case "text/csv", "application/csv", "text/plain":
		src, format = req.Body, "csv"
	case "", "application/x-www-form-urlencoded", "application/octet-stream":
		src = req.Body // what curl -d or --data-binary sends: look at it
	default:
		writeGatewayError(w, &gatewayError{status: http.StatusUnsupportedMediaType,
			code: "unsupported_media_type", field: "Content-Type",
			msg: "Content-Type: " + mediaType + " is not taken here; send multipart/form-data " +
				"with a file field, application/json or text/csv"})
		return
	}
	if f, ok := opts.values["format"]; ok {
		f = strings.ToLower(f)
		if f != "csv" && f != "json" {
			writeGatewayError(w, invalidRequest(newFieldError("format", "must be csv or json")))
			return
		}
		format = f
	}
	fileField := "file"
	if form == nil {
		fileField = "body"
	}
	in := bufio.NewReaderSize(src, uploadChunkBytes)
	sniffed, serr := sniffFile(in, fileField)
	if serr != nil {
		writeGatewayError(w, invalidRequest(serr))
		return
	}
	if format == "" {
		format = sniffed
	}

	md, err := runtime.AnnotateContext(ctx, u.mux, req)
	if err != nil {
		writeStatusError(w, status.Convert(err), nil)
		return
	}
	stream, err := u.client.ImportRecipients(md)
	if err != nil {
		writeStatusError(w, status.Convert(err), nil)
		return
	}
	s := &importStream{stream: stream}
	first := &campaignsv1.ImportRecipientsRequest{
		CampaignId:    params["id"],
		DefaultRegion: opts.values["default_region"],
		RequestId:     opts.values["request_id"],
		Format:        campaignsv1.ImportRecipientsRequest_csv,
	}
	var ferr error
	if format == "json" {
		first.Format = campaignsv1.ImportRecipientsRequest_json_rows
		s.send(first)
		ferr = streamJSONRows(in, s, fileField)
	} else {
		s.send(first)
		ferr = streamCSV(in, s)
	}
	if ferr == nil && form != nil {
		ferr = expectFormEnd(form)
	}
	if ferr != nil {
		cancel()
		var fe *fieldError
		if errors.As(ferr, &fe) {
			writeGatewayError(w, invalidRequest(ferr))
		} else {
			// The client's body broke off: nothing to answer it with but
			// this (it is likely gone).
			writeGatewayError(w, invalidRequest(newFieldError(fileField, "could not be read to its end: "+ferr.Error())))
		}
		return
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		writeStatusError(w, status.Convert(err), stream.Trailer())
		return
	}
	out, err := u.marshaler.Marshal(resp)
	if err != nil {
		writeStatusError(w, status.New(codes.Internal, err.Error()), nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// readFormUntilFile reads the form's fields up to its `file` part, which it
// returns unread.
func readFormUntilFile(mr *multipart.Reader, opts *uploadOptions) (*multipart.Part, error) {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, newFieldError("file", `is required: a multipart field named "file" (curl -F file=@recipients.csv)`)
		}
		if err != nil {
			return nil, newFieldError("body", "is not a valid multipart form: "+err.Error())
		}
		name := p.FormName()
		switch {
		case name == "file":
			return p, nil
		case contains(uploadOptionNames, name):
			value, err := ioutil.ReadAll(io.LimitReader(p, uploadFieldBytes+1))
			if err != nil {
				return nil, newFieldError(name, "cannot be read: "+err.Error())
			}
			if len(value) > uploadFieldBytes {
				return nil, newFieldError(name, fmt.Sprintf("is longer than %d bytes", uploadFieldBytes))
			}
			if err := opts.set(name, strings.TrimSpace(string(value)), "form"); err != nil {
				return nil, err
			}
		default:
			return nil, newFieldError(name, "unknown form field (an upload takes file, "+
				strings.Join(uploadOptionNames, ", ")+")")
		}
	}
}

// expectFormEnd refuses a form with fields after the file: they would come
// too late to apply, and dropping them would lose them silently.
func expectFormEnd(mr *multipart.Reader) error {
	p, err := mr.NextPart()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return newFieldError("body", "is not a valid multipart form after the file: "+err.Error())
	}
	name := p.FormName()
	if name == "file" {
		return newFieldError("file", "only one file per upload")
	}
	if contains(uploadOptionNames, name) {
		return newFieldError(name, "must come before the file field in the form")
	}
	return newFieldError(name, "unknown form field (an upload takes file, "+
		strings.Join(uploadOptionNames, ", ")+")")
}

// formatOf tells CSV from JSON by the part's Content-Type or file name;
// "" = look at the content.
func formatOf(contentType, name string) string {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch mediaType {
	case "text/csv", "application/csv", "application/vnd.ms-excel":
		return "csv"
	case "application/json", "application/x-ndjson", "application/jsonl", "application/x-jsonlines":
		return "json"
	}
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".csv"):
		return "csv"
	case strings.HasSuffix(lower, ".json"), strings.HasSuffix(lower, ".jsonl"),
		strings.HasSuffix(lower, ".ndjson"):
		return "json"
	}
	return ""
}

// sniffFile refuses an empty or binary file and guesses its format from
// its first byte: '[' or '{' is JSON, anything else CSV.
func sniffFile(in *bufio.Reader, field string) (string, error) {
	head, err := in.Peek(4096)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return "", newFieldError(field, "cannot be read: "+err.Error())
	}
	head = bytes.TrimPrefix(head, []byte("\xEF\xBB\xBF"))
	if len(bytes.TrimSpace(head)) == 0 {
		return "", newFieldError(field, "is empty: want CSV (a header row, then a row a recipient) or JSON rows")
	}
	check := head
	if len(head) == 4096 {
		// The peek may end inside a character.
		for i := 0; i < utf8.UTFMax && len(check) > 0 && !utf8.Valid(check); i++ {
			check = check[:len(check)-1]
		}
	}
	if bytes.IndexByte(head, 0) >= 0 || !utf8.Valid(check) {
		return "", newFieldError(field, "is neither CSV nor JSON (it is not UTF-8 text)")
	}
	switch bytes.TrimSpace(head)[0] {
	case '[', '{':
		return "json", nil
	}
	return "csv", nil
}

func streamCSV(in io.Reader, s *importStream) error {
	buf := make([]byte, uploadChunkBytes)
	for !s.closed {
		n, err := in.Read(buf)
		if n > 0 {
			s.send(&campaignsv1.ImportRecipientsRequest{CsvChunk: append([]byte(nil), buf[:n]...)})
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// streamJSONRows reads rows as campaignctl does (an array of row objects,
// {"recipients": [...]}, or one object a line) without holding them all.
func streamJSONRows(in *bufio.Reader, s *importStream, field string) error {
	skipBOMAndSpace(in)
	dec := json.NewDecoder(in)
	dec.UseNumber()
	batch := &campaignsv1.ImportRecipientsRequest{}
	rows := 0
	flush := func() {
		if len(batch.Rows) > 0 {
			s.send(batch)
			batch = &campaignsv1.ImportRecipientsRequest{}
		}
	}
	add := func(v interface{}, at string) error {
		row, err := toRow(v, at)
		if err != nil {
			return err
		}
		batch.Rows = append(batch.Rows, row)
		rows++
		if len(batch.Rows) == uploadRowsPerSend {
			flush()
		}
		return nil
	}
	first, _ := in.Peek(1)
	wrapped := len(first) == 1 && first[0] == '{' && startsWithRecipientsKey(in)
	switch {
	case len(first) == 1 && first[0] == '[':
		if _, err := dec.Token(); err != nil {
			return jsonFileError(field, err)
		}
		for i := 0; dec.More() && !s.closed; i++ {
			var v interface{}
			if err := dec.Decode(&v); err != nil {
				return jsonFileError(field, err)
			}
			if err := add(v, fmt.Sprintf("%s[%d]", field, i)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return jsonFileError(field, err)
		}
	case wrapped:
		if _, err := dec.Token(); err != nil { // {
			return jsonFileError(field, err)
		}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return jsonFileError(field, err)
			}
			name, _ := key.(string)
			if name != "recipients" {
				return newFieldError(name, "unknown field (the body is {\"recipients\": [...]})")
			}
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return newFieldError("recipients", "must be a JSON array of row objects")
			}
			for i := 0; dec.More() && !s.closed; i++ {
				var v interface{}
				if err := dec.Decode(&v); err != nil {
					return jsonFileError("recipients", err)
				}
				if err := add(v, fmt.Sprintf("recipients[%d]", i)); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ]
				return jsonFileError("recipients", err)
			}
		}
		if _, err := dec.Token(); err != nil { // }
			return jsonFileError(field, err)
		}
	default: // one object a line
		for i := 0; !s.closed; i++ {
			var v interface{}
			err := dec.Decode(&v)
			if err == io.EOF {
				break
			}
			if err != nil {
				return jsonFileError(field, err)
			}
			if i == 0 {
				if key, ok := misspeltWrapper(v); ok {
					return newFieldError(key, "unknown field (the body is {\"recipients\": [...]})")
				}
			}
			if err := add(v, fmt.Sprintf("%s row %d", field, i+1)); err != nil {
				return err
			}
		}
	}
	if !s.closed {
		if _, err := dec.Token(); err != io.EOF {
			return newFieldError(field, "has more after its JSON rows")
		}
	}
	flush()
	if rows == 0 && !s.closed {
		return newFieldError(field, "has no rows")
	}
	return nil
}

// misspeltWrapper tells {"recipient": [...]} (one key holding an array) from
// a row: no row is a single list.
func misspeltWrapper(v interface{}) (string, bool) {
	obj, ok := v.(map[string]interface{})
	if !ok || len(obj) != 1 {
		return "", false
	}
	for k, x := range obj {
		if _, isList := x.([]interface{}); isList {
			return k, true
		}
	}
	return "", false
}

func skipBOMAndSpace(in *bufio.Reader) {
	if b, _ := in.Peek(3); bytes.Equal(b, []byte("\xEF\xBB\xBF")) {
		in.Discard(3)
	}
	for {
		b, err := in.Peek(1)
		if err != nil || !strings.ContainsRune(" \t\r\n", rune(b[0])) {
			return
		}
		in.Discard(1)
	}
}

// startsWithRecipientsKey peeks whether the object starting at `in` opens
// with the key "recipients" (seed 004's body), not a row's first key.
func startsWithRecipientsKey(in *bufio.Reader) bool {
	head, _ := in.Peek(256)
	rest := bytes.TrimLeft(head[1:], " \t\r\n")
	return bytes.HasPrefix(rest, []byte(`"recipients"`))
}

func jsonFileError(field string, err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return newFieldError(field, fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax))
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return newFieldError(field, "malformed JSON: unexpected end of input")
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return newFieldError(field, "malformed JSON: "+err.Error())
	}
	return err // a read error: the body broke off
}

// isAddressKey: the columns an address may be in (as CSV headers).
func isAddressKey(key string) bool {
	switch strings.ToLower(key) {
	case "address", "phone", "phone_number", "email", "chat_id":
		return true
	}
	return false
}

// scalarText is a row value as text: strings as they are, null as "",
// anything else as its JSON.
func scalarText(v interface{}) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// toRow turns one JSON row object into a RecipientRow as campaignctl does:
// the first address key (address, chat_id, email, phone, phone_number, in
// that order) is the address, contact_id is the contact, a `variables`
// object holds variables, and every other key is a variable.
func toRow(v interface{}, at string) (*campaignsv1.RecipientRow, error) {
	obj, ok := v.(map[string]interface{})
	if !ok {
		return nil, newFieldError(at, "must be a JSON object (a row)")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	row := &campaignsv1.RecipientRow{Variables: map[string]string{}}
	for _, k := range keys {
		value := obj[k]
		nested, isObject := value.(map[string]interface{})
		switch {
		case k == "contact_id":
			row.ContactId = scalarText(value)
		case k == "variables" && isObject:
			for vk, vv := range nested {
				row.Variables[vk] = scalarText(vv)
			}
		case row.Address == "" && isAddressKey(k):
			row.Address = scalarText(value)
		default:
			row.Variables[k] = scalarText(value)
		}
	}
	return row, nil
}
