// Unit tests of the gateway's edge: the strict JSON check, the seeds'
// spellings, the route table, status mapping and the upload readers. The
// end-to-end behaviour (through campaignd) is tested by tests/e2e.
package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	campaignsv1 "campaignd/gen/campaigns/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

func testSchema(t *testing.T) *schema {
	t.Helper()
	s, err := loadSchema(protoFiles)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decode(t *testing.T, text string) interface{} {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func fieldOf(err error) string {
	if fe, ok := err.(*fieldError); ok {
		return fe.field
	}
	return ""
}

func TestStrictBodiesNameTheUnknownField(t *testing.T) {
	s := testSchema(t)
	cases := []struct {
		message, body, field string
	}{
		{"campaigns.v1.CreateCampaignRequest", `{"name": "x", "sender": "+1"}`, "sender"},
		{"campaigns.v1.SetPricesRequest", `{"prices": [{"channel": "sms", "amount": 1}, {"unit_price": 5}]}`, "prices[1].unit_price"},
		{"campaigns.v1.CreateTemplateRequest", `{"name": "t", "bodyy": "Hi"}`, "bodyy"},
		{"campaigns.v1.CreateTemplateRequest", `{"components": [{"type": "body", "parameters": [{"type": "text", "txt": "x"}]}]}`, "components[0].parameters[0].txt"},
		{"campaigns.v1.CreateCampaignRequest", `{"name": 5}`, "name"},
		{"campaigns.v1.CreateCampaignRequest", `{"channel": "smss"}`, "channel"},
		{"campaigns.v1.CreateCampaignRequest", `{"batch_size": "ten"}`, "batch_size"},
		{"campaigns.v1.CreateCampaignRequest", `{"batch_size": 3000000000}`, "batch_size"},
		{"campaigns.v1.CreateCampaignRequest", `{"start": "yes"}`, "start"},
		{"campaigns.v1.CreateCampaignRequest", `{"schedule_at": "tomorrow"}`, "schedule_at"},
		{"campaigns.v1.CreateCampaignRequest", `{"batch_delay": "2 seconds"}`, "batch_delay"},
		{"campaigns.v1.CreateCampaignRequest", `{"tags": "vip"}`, "tags"},
		{"campaigns.v1.CreateCampaignRequest", `{"variable_mapping": {"1": 2}}`, "variable_mapping.1"},
		{"campaigns.v1.CreateCampaignRequest", `{"recipient_variables": {"ct_1": "Asha"}}`, "recipient_variables.ct_1"},
		{"campaigns.v1.CreateCampaignRequest", `{"senderId": "a", "sender_id": "b"}`, "sender_id"},
		{"campaigns.v1.CreateCampaignRequest", `[1, 2]`, "body"},
	}
	for _, c := range cases {
		_, err := s.checkMessage(c.message, decode(t, c.body), "")
		if fieldOf(err) != c.field {
			t.Errorf("%s %s: got %v, want an error naming %q", c.message, c.body, err, c.field)
		}
	}
}

func TestStrictBodiesNormalise(t *testing.T) {
	s := testSchema(t)
	v := decode(t, `{"name": "x", "channel": "WhatsApp", "senderId": "+1",
		"schedule_at": "2026-03-01", "batch_size": "500", "rate_limit_per_second": 2e1,
		"recipient_variables": {"ct_1": {"1": "Asha", "n": 2}}, "contact_list_id": null}`)
	out, err := s.checkMessage("campaigns.v1.CreateCampaignRequest", v, "")
	if err != nil {
		t.Fatal(err)
	}
	obj := out.(map[string]interface{})
	want := map[string]interface{}{
		"channel": "whatsapp", "schedule_at": "2026-03-01T00:00:00Z",
		"batch_size": "500", "rate_limit_per_second": json.Number("20"),
	}
	for k, w := range want {
		if !reflect.DeepEqual(obj[k], w) {
			t.Errorf("%s = %#v, want %#v", k, obj[k], w)
		}
	}
	mask, err := s.checkMessage("campaigns.v1.UpdateCampaignRequest",
		decode(t, `{"update_mask": "name, batchDelay"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	paths := mask.(map[string]interface{})["update_mask"]
	if !reflect.DeepEqual(paths, map[string]interface{}{"paths": []interface{}{"name", "batch_delay"}}) {
		t.Errorf("update_mask = %#v", paths)
	}
}

func TestSeedSpellings(t *testing.T) {
	cases := []struct {
		body    string
		want    map[string]interface{}
		errorAt string
	}{
		{`{"scheduled_at": "2026-03-25T10:00:00Z", "channel_id": "snd_1", "variable_mappings": {"1": "name"}}`,
			map[string]interface{}{"schedule_at": "2026-03-25T10:00:00Z", "sender_id": "snd_1",
				"variable_mapping": map[string]interface{}{"1": "name"}}, ""},
		{`{"account_id": "snd_2"}`, map[string]interface{}{"sender_id": "snd_2"}, ""},
		{`{"audience_type": "tags", "audience_tags": ["vip"]}`,
			map[string]interface{}{"tags": []interface{}{"vip"}}, ""},
		{`{"audience_type": "Contact_IDs", "audience_contact_ids": ["ct_1"]}`,
			map[string]interface{}{"contact_ids": []interface{}{"ct_1"}}, ""},
		{`{"audience_type": "tags"}`, nil, "audience_tags"},
		{`{"audience_type": "tags", "audience_tags": ["a"], "audience_contact_ids": ["ct_1"]}`, nil, "audience_contact_ids"},
		{`{"audience_type": "everyone"}`, nil, "audience_type"},
		{`{"scheduled_at": "2026-01-01T00:00:00Z", "scheduleAt": "2026-01-01T00:00:00Z"}`, nil, "scheduled_at"},
	}
	for _, c := range cases {
		obj := decode(t, c.body).(map[string]interface{})
		err := rewriteBody(createCampaign, obj)
		if c.errorAt != "" {
			if fieldOf(err) != c.errorAt {
				t.Errorf("%s: got %v, want an error naming %s", c.body, err, c.errorAt)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(obj, c.want) {
			t.Errorf("%s: got %v %v, want %v", c.body, obj, err, c.want)
		}
	}
	if got := rewriteQueryKey(listCampaigns, "per_page"); got != "limit" {
		t.Errorf("per_page -> %s", got)
	}
	if got := rewriteQueryKey("campaigns.v1.ListRecipientsRequest", "per_page"); got != "limit" {
		t.Errorf("per_page (recipients) -> %s", got)
	}
	for _, v := range []string{"running", "Processing", "SENDING"} {
		if got := rewriteQueryValue(listCampaigns, "status", v); strings.ToLower(got) != "sending" {
			t.Errorf("status %s -> %s", v, got)
		}
	}
}

func TestRoutes(t *testing.T) {
	s := testSchema(t)
	var names []string
	for _, svc := range services {
		names = append(names, svc.name)
	}
	rt, err := loadRoutes(s, protoFiles, names)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path, rpc string
		status            int
		allowed           []string
	}{
		{"GET", "/api/v1/campaigns/stats", "GetCampaignStats", 200, nil},
		{"GET", "/api/v1/campaigns/cmp_1", "GetCampaign", 200, nil},
		{"POST", "/api/v1/campaigns", "CreateCampaign", 201, nil},
		{"POST", "/api/v1/senders", "RegisterSender", 201, nil},
		{"DELETE", "/api/v1/campaigns/cmp_1", "DeleteCampaign", 204, nil},
		{"POST", "/api/v1/campaigns/cmp_1/calculateGoal", "EstimateCost", 200, nil},
		{"POST", "/api/v1/contact-lists/cl_1/contacts:remove", "RemoveContactsFromList", 200, nil},
		{"POST", "/api/v1/campaigns/cmp_1", "", 0, []string{"DELETE", "GET", "PATCH", "PUT"}},
		{"GET", "/api/v1/nothing", "", 0, nil},
	}
	for _, c := range cases {
		r, _, allowed := rt.find(c.method, c.path)
		if c.rpc == "" {
			if r != nil || !reflect.DeepEqual(allowed, c.allowed) {
				t.Errorf("%s %s: got %v %v, want none, allowed %v", c.method, c.path, r, allowed, c.allowed)
			}
			continue
		}
		if r == nil || r.rpc != c.rpc || r.successStatus() != c.status {
			t.Errorf("%s %s: got %+v", c.method, c.path, r)
		}
	}
	for in, want := range map[string]string{
		"/api/campaigns/x/start":             "/api/v1/campaigns/x/start",
		"/api/v1/messaging/campaigns":        "/api/v1/campaigns",
		"/api/v1/campaigns":                  "/api/v1/campaigns",
		"/healthz":                           "/healthz",
		"/api/campaigns/x/recipients/import": "/api/v1/campaigns/x/recipients/import",
	} {
		if got := canonicalPath(in); got != want {
			t.Errorf("canonicalPath(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestQueryParameters(t *testing.T) {
	s := testSchema(t)
	var names []string
	for _, svc := range services {
		names = append(names, svc.name)
	}
	routes, _ := loadRoutes(s, protoFiles, names)
	e := &edge{schema: s, routes: routes}
	list, _, _ := routes.find("GET", "/api/v1/campaigns")
	got, err := e.checkQuery(list, nil, url.Values{"per_page": {"5"}, "status": {"RUNNING"},
		"account_id": {"snd_1"}, "pageToken": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"limit": {"5"}, "status": {"sending"}, "sender_id": {"snd_1"}, "page_token": {"x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []url.Values{{"limt": {"5"}}, {"limit": {"x"}}, {"status": {"done"}},
		{"limit": {"1", "2"}}} {
		if _, err := e.checkQuery(list, nil, bad); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	stats, _, _ := routes.find("GET", "/api/v1/campaigns/stats")
	got, err = e.checkQuery(stats, nil, url.Values{"from": {"2026-11-01"}})
	if err != nil || got.Get("from") != "2026-11-01T00:00:00Z" {
		t.Errorf("from date: %v %v", got, err)
	}
	if _, err := e.checkQuery(stats, nil, url.Values{"from": {"yesterday"}}); fieldOf(err) != "from" {
		t.Errorf("from yesterday: %v", err)
	}
	get, params, _ := routes.find("GET", "/api/v1/campaigns/cmp_1")
	if _, err := e.checkQuery(get, params, url.Values{"id": {"cmp_2"}}); fieldOf(err) != "id" {
		t.Errorf("id in the query: %v", err)
	}
	create, _, _ := routes.find("POST", "/api/v1/campaigns")
	if _, err := e.checkQuery(create, nil, url.Values{"start": {"true"}}); fieldOf(err) != "start" {
		t.Errorf("query on a body route: %v", err)
	}
}

func TestHTTPStatus(t *testing.T) {
	cases := []struct {
		code   codes.Code
		reason string
		want   int
	}{
		{codes.InvalidArgument, "INVALID_REQUEST", 400},
		{codes.Unauthenticated, "UNAUTHORIZED", 401},
		{codes.NotFound, "NOT_FOUND", 404},
		{codes.FailedPrecondition, "VALIDATION_ERROR", 422},
		{codes.FailedPrecondition, "INSUFFICIENT_CREDITS", 422},
		{codes.FailedPrecondition, "ILLEGAL_TRANSITION", 409},
		{codes.ResourceExhausted, "RATE_LIMIT_EXCEEDED", 429},
		{codes.AlreadyExists, "IDEMPOTENCY_CONFLICT", 409},
		{codes.Unavailable, "", 503},
	}
	for _, c := range cases {
		if got := httpStatus(c.code, c.reason); got != c.want {
			t.Errorf("%v %s: %d, want %d", c.code, c.reason, got, c.want)
		}
	}
	if got := http.StatusText(httpStatus(codes.Internal, "")); got == "" {
		t.Error("internal has no status text")
	}
}

// fakeImport records what an upload sends.
type fakeImport struct {
	grpc.ClientStream
	sent []*campaignsv1.ImportRecipientsRequest
}

func (f *fakeImport) Send(r *campaignsv1.ImportRecipientsRequest) error {
	f.sent = append(f.sent, r)
	return nil
}

func (f *fakeImport) CloseAndRecv() (*campaignsv1.ImportRecipientsResponse, error) {
	return &campaignsv1.ImportRecipientsResponse{}, nil
}

func rowsOf(f *fakeImport) []*campaignsv1.RecipientRow {
	var out []*campaignsv1.RecipientRow
	for _, r := range f.sent {
		out = append(out, r.Rows...)
	}
	return out
}

func TestJSONRowsEveryShape(t *testing.T) {
	for _, body := range []string{
		`[{"phone": "+1202", "name": "Ann"}, {"phone_number": "+1203", "variables": {"code": 7}}]`,
		"\xEF\xBB\xBF{\"recipients\": [{\"phone\": \"+1202\", \"name\": \"Ann\"}, {\"phone_number\": \"+1203\", \"variables\": {\"code\": 7}}]}",
		"{\"phone\": \"+1202\", \"name\": \"Ann\"}\n\n{\"phone_number\": \"+1203\", \"variables\": {\"code\": 7}}\n",
	} {
		f := &fakeImport{}
		err := streamJSONRows(bufio.NewReader(strings.NewReader(body)), &importStream{stream: f}, "file")
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		rows := rowsOf(f)
		if len(rows) != 2 || rows[0].Address != "+1202" || rows[0].Variables["name"] != "Ann" ||
			rows[1].Address != "+1203" || rows[1].Variables["code"] != "7" {
			t.Errorf("%q: rows %v", body, rows)
		}
	}
}

func TestJSONRowsBadInput(t *testing.T) {
	cases := map[string]string{
		`[{"phone": "+1"}, 5]`:                      "file[1]",
		`{"recipients": [{"phone": "+1"}], "x": 1}`: "x",
		`{"recipients": {"phone": "+1"}}`:           "recipients",
		`[{"phone": "+1"}`:                          "file",
		`[]`:                                        "file",
		`{"recipients": [{"phone": "+1"}, {]}`:      "recipients",
		`{"recipient": [{"phone": "+1"}]}`:          "recipient",
	}
	for body, field := range cases {
		f := &fakeImport{}
		err := streamJSONRows(bufio.NewReader(strings.NewReader(body)), &importStream{stream: f}, "file")
		if fieldOf(err) != field {
			t.Errorf("%s: got %v, want an error naming %s", body, err, field)
		}
	}
}

func TestSniff(t *testing.T) {
	cases := map[string]string{
		"phone,name\n+1,A\n":      "csv",
		"  [ {\"phone\": 1} ]":    "json",
		"\xEF\xBB\xBFphone\n+1\n": "csv",
	}
	for body, want := range cases {
		got, err := sniffFile(bufio.NewReaderSize(strings.NewReader(body), 65536), "file")
		if err != nil || got != want {
			t.Errorf("%q: %s %v, want %s", body, got, err, want)
		}
	}
	for _, bad := range []string{"", "  \n", "PK\x03\x04\x00\x00binary", "\xff\xfe\xfa"} {
		if _, err := sniffFile(bufio.NewReaderSize(strings.NewReader(bad), 65536), "file"); fieldOf(err) != "file" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
