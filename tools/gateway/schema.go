// schema.go: the request messages' shapes, read from the descriptors the
// generated Go code registers, and the strict check of JSON against them.
//
// grpc-gateway 1.6.4 decodes bodies with AllowUnknownFields and ignores
// query parameters it does not know: a misspelt field was silently dropped.
// Here every JSON value is walked against its message before it is
// forwarded: an unknown field, a value of the wrong type, an enum name that
// does not exist or a malformed time is a *fieldError naming its path
// ("prices[0].unit_price"). The walk also normalises what proto3 JSON
// leaves open: enum names in any case become the lowercase names campaignd
// declares.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/golang/protobuf/proto"
	descpb "github.com/golang/protobuf/protoc-gen-go/descriptor"
)

// schema indexes messages and enums by full name ("campaigns.v1.Campaign").
// Read-only once loaded: safe for concurrent use.
type schema struct {
	messages map[string]*descpb.DescriptorProto
	enums    map[string]*descpb.EnumDescriptorProto
	files    map[string]*descpb.FileDescriptorProto
}

// loadSchema reads the registered descriptors of `roots` and what they
// import. A root that is not registered is an error; an import that is not
// is skipped (well-known types are checked by name, see checkWellKnown).
func loadSchema(roots []string) (*schema, error) {
	s := &schema{
		messages: map[string]*descpb.DescriptorProto{},
		enums:    map[string]*descpb.EnumDescriptorProto{},
		files:    map[string]*descpb.FileDescriptorProto{},
	}
	var load func(name string, required bool) error
	load = func(name string, required bool) error {
		if _, ok := s.files[name]; ok {
			return nil
		}
		gz := proto.FileDescriptor(name)
		if gz == nil {
			if required {
				return fmt.Errorf("no registered descriptor for %s", name)
			}
			return nil
		}
		fd, err := decodeFileDescriptor(gz)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		s.files[name] = fd
		prefix := fd.GetPackage()
		s.indexMessages(prefix, fd.GetMessageType())
		s.indexEnums(prefix, fd.GetEnumType())
		for _, dep := range fd.GetDependency() {
			if err := load(dep, false); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range roots {
		if err := load(name, true); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func decodeFileDescriptor(gz []byte) (*descpb.FileDescriptorProto, error) {
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := ioutil.ReadAll(r)
	if err != nil {
		return nil, err
	}
	fd := &descpb.FileDescriptorProto{}
	if err := proto.Unmarshal(raw, fd); err != nil {
		return nil, err
	}
	return fd, nil
}

func (s *schema) indexMessages(prefix string, msgs []*descpb.DescriptorProto) {
	for _, m := range msgs {
		name := prefix + "." + m.GetName()
		s.messages[name] = m
		s.indexMessages(name, m.GetNestedType())
		s.indexEnums(name, m.GetEnumType())
	}
}

func (s *schema) indexEnums(prefix string, enums []*descpb.EnumDescriptorProto) {
	for _, e := range enums {
		s.enums[prefix+"."+e.GetName()] = e
	}
}

// typeName drops the leading dot of a descriptor's type reference.
func typeName(ref string) string { return strings.TrimPrefix(ref, ".") }

// fieldByJSONKey finds the field a JSON key names: its proto name
// ("sender_id") or its JSON name ("senderId"), as proto3 JSON accepts both.
func fieldByJSONKey(m *descpb.DescriptorProto, key string) *descpb.FieldDescriptorProto {
	for _, f := range m.GetField() {
		if f.GetName() == key || f.GetJsonName() == key {
			return f
		}
	}
	return nil
}

func (s *schema) isMap(f *descpb.FieldDescriptorProto) bool {
	if f.GetType() != descpb.FieldDescriptorProto_TYPE_MESSAGE ||
		f.GetLabel() != descpb.FieldDescriptorProto_LABEL_REPEATED {
		return false
	}
	m := s.messages[typeName(f.GetTypeName())]
	return m != nil && m.GetOptions().GetMapEntry()
}

// joinPath appends a field name to a JSON path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// orBody names the whole body when a path is empty.
func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// checkMessage checks `v` (decoded with json.Decoder.UseNumber) against the
// message `name` and returns it normalised.
func (s *schema) checkMessage(name string, v interface{}, path string) (interface{}, error) {
	if out, handled, err := s.checkWellKnown(name, v, path); handled {
		return out, err
	}
	m := s.messages[name]
	if m == nil {
		return nil, fmt.Errorf("gateway: no descriptor for %s", name)
	}
	obj, ok := v.(map[string]interface{})
	if !ok {
		return nil, newFieldError(orBody(path), "must be a JSON object")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]string{}
	for _, key := range keys {
		at := joinPath(path, key)
		f := fieldByJSONKey(m, key)
		if f == nil {
			return nil, newFieldError(at, "unknown field")
		}
		if other, dup := seen[f.GetName()]; dup {
			return nil, newFieldError(at, "is given twice (also as "+other+")")
		}
		seen[f.GetName()] = key
		if obj[key] == nil {
			continue // null: the field's default
		}
		out, err := s.checkField(f, obj[key], at)
		if err != nil {
			return nil, err
		}
		obj[key] = out
	}
	return obj, nil
}

func (s *schema) checkField(f *descpb.FieldDescriptorProto, v interface{}, path string) (interface{}, error) {
	if s.isMap(f) {
		obj, ok := v.(map[string]interface{})
		if !ok {
			return nil, newFieldError(path, "must be a JSON object")
		}
		entry := s.messages[typeName(f.GetTypeName())]
		var key, value *descpb.FieldDescriptorProto
		for _, ef := range entry.GetField() {
			switch ef.GetNumber() {
			case 1:
				key = ef
			case 2:
				value = ef
			}
		}
		for k, x := range obj {
			at := path + "." + k
			if key.GetType() != descpb.FieldDescriptorProto_TYPE_STRING {
				if _, err := checkInteger(json.Number(k), key.GetType(), at); err != nil {
					return nil, newFieldError(at, "map key must be a number")
				}
			}
			if x == nil {
				return nil, newFieldError(at, "must not be null")
			}
			out, err := s.checkSingle(value, x, at)
			if err != nil {
				return nil, err
			}
			obj[k] = out
		}
		return obj, nil
	}
	if f.GetLabel() == descpb.FieldDescriptorProto_LABEL_REPEATED {
		list, ok := v.([]interface{})
		if !ok {
			return nil, newFieldError(path, "must be a JSON array")
		}
		for i, x := range list {
			at := fmt.Sprintf("%s[%d]", path, i)
			if x == nil {
				return nil, newFieldError(at, "must not be null")
			}
			out, err := s.checkSingle(f, x, at)
			if err != nil {
				return nil, err
			}
			list[i] = out
		}
		return list, nil
	}
	return s.checkSingle(f, v, path)
}

// checkSingle checks one value of a (non-repeated, or element of a repeated)
// field.
func (s *schema) checkSingle(f *descpb.FieldDescriptorProto, v interface{}, path string) (interface{}, error) {
	switch f.GetType() {
	case descpb.FieldDescriptorProto_TYPE_MESSAGE, descpb.FieldDescriptorProto_TYPE_GROUP:
		return s.checkMessage(typeName(f.GetTypeName()), v, path)
	case descpb.FieldDescriptorProto_TYPE_ENUM:
		return s.checkEnum(typeName(f.GetTypeName()), v, path)
	case descpb.FieldDescriptorProto_TYPE_STRING:
		if _, ok := v.(string); !ok {
			return nil, newFieldError(path, "must be a string")
		}
		return v, nil
	case descpb.FieldDescriptorProto_TYPE_BYTES:
		text, ok := v.(string)
		if !ok {
			return nil, newFieldError(path, "must be a base64 string")
		}
		if _, err := base64.StdEncoding.DecodeString(text); err != nil {
			if _, err := base64.URLEncoding.DecodeString(text); err != nil {
				return nil, newFieldError(path, "must be a base64 string")
			}
		}
		return v, nil
	case descpb.FieldDescriptorProto_TYPE_BOOL:
		if _, ok := v.(bool); !ok {
			return nil, newFieldError(path, "must be true or false")
		}
		return v, nil
	case descpb.FieldDescriptorProto_TYPE_DOUBLE, descpb.FieldDescriptorProto_TYPE_FLOAT:
		return checkFloat(v, path)
	default:
		return checkInteger(v, f.GetType(), path)
	}
}

// checkEnum accepts a value's name in any case, or its number.
func (s *schema) checkEnum(name string, v interface{}, path string) (interface{}, error) {
	e := s.enums[name]
	if e == nil {
		return nil, fmt.Errorf("gateway: no descriptor for enum %s", name)
	}
	var names []string
	for _, value := range e.GetValue() {
		if !strings.HasSuffix(value.GetName(), "_unspecified") {
			names = append(names, value.GetName())
		}
	}
	switch x := v.(type) {
	case string:
		for _, value := range e.GetValue() {
			if strings.EqualFold(value.GetName(), x) {
				return value.GetName(), nil
			}
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			for _, value := range e.GetValue() {
				if int64(value.GetNumber()) == n {
					return value.GetName(), nil
				}
			}
		}
	}
	return nil, newFieldError(path, "must be one of "+strings.Join(names, ", "))
}

// numberText is a JSON number or a string holding one (proto3 JSON writes
// 64-bit integers as strings and reads either).
func numberText(v interface{}) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return string(x), true
	case string:
		return strings.TrimSpace(x), true
	}
	return "", false
}

func checkInteger(v interface{}, t descpb.FieldDescriptorProto_Type, path string) (interface{}, error) {
	text, ok := numberText(v)
	if !ok {
		return nil, newFieldError(path, "must be an integer")
	}
	bits, unsigned := 64, false
	switch t {
	case descpb.FieldDescriptorProto_TYPE_INT32, descpb.FieldDescriptorProto_TYPE_SINT32,
		descpb.FieldDescriptorProto_TYPE_SFIXED32:
		bits = 32
	case descpb.FieldDescriptorProto_TYPE_UINT32, descpb.FieldDescriptorProto_TYPE_FIXED32:
		bits, unsigned = 32, true
	case descpb.FieldDescriptorProto_TYPE_UINT64, descpb.FieldDescriptorProto_TYPE_FIXED64:
		unsigned = true
	}
	parse := func(text string) error {
		var err error
		if unsigned {
			_, err = strconv.ParseUint(text, 10, bits)
		} else {
			_, err = strconv.ParseInt(text, 10, bits)
		}
		return err
	}
	err := parse(text)
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrSyntax {
		// An integral number written as 1e3 or 5.0 is still an integer.
		if f, ferr := strconv.ParseFloat(text, 64); ferr == nil &&
			f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			text = strconv.FormatFloat(f, 'f', -1, 64)
			err = parse(text)
		}
	}
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return nil, newFieldError(path, fmt.Sprintf("is out of range for a %d-bit integer", bits))
		}
		return nil, newFieldError(path, "must be an integer")
	}
	if _, isString := v.(string); isString {
		return text, nil
	}
	return json.Number(text), nil
}

func checkFloat(v interface{}, path string) (interface{}, error) {
	text, ok := numberText(v)
	if !ok {
		return nil, newFieldError(path, "must be a number")
	}
	switch text {
	case "NaN", "Infinity", "-Infinity":
		return v, nil
	}
	if _, err := strconv.ParseFloat(text, 64); err != nil {
		return nil, newFieldError(path, "must be a number")
	}
	return v, nil
}

var durationText = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?s$`)

// dateLayout is a bare date, read as a Timestamp at midnight UTC.
const dateLayout = "2006-01-02"

// parseTimestamp reads a Timestamp as proto3 JSON text, or a bare date as
// midnight UTC; it returns the RFC 3339 text to forward.
func parseTimestamp(text, path string) (string, error) {
	if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	if t, err := time.Parse(dateLayout, text); err == nil {
		return t.Format(time.RFC3339), nil
	}
	return "", newFieldError(path,
		"must be an RFC 3339 time such as 2026-03-01T09:00:00Z, or a date such as 2026-03-01")
}

// checkWellKnown handles the google.protobuf types proto3 JSON spells
// specially; handled is false for any other message.
func (s *schema) checkWellKnown(name string, v interface{}, path string) (out interface{}, handled bool, err error) {
	switch name {
	case "google.protobuf.Timestamp":
		text, _ := v.(string) // not a string: refused as a bad one is
		fixed, err := parseTimestamp(text, path)
		if err != nil {
			return nil, true, err
		}
		return fixed, true, nil
	case "google.protobuf.Duration":
		text, ok := v.(string)
		if !ok || !durationText.MatchString(text) {
			return nil, true, newFieldError(path, `must be a duration in seconds such as "1.5s"`)
		}
		return text, true, nil
	case "google.protobuf.FieldMask":
		// proto3 JSON spells a mask as one string of lowerCamelCase paths
		// ("name,batchDelay"); golang/protobuf 1.3's jsonpb reads only
		// {"paths": [...]}, and campaignd wants the proto (snake_case)
		// paths. Both spellings become {"paths": [snake_case, ...]}.
		var paths []string
		switch x := v.(type) {
		case string:
			for _, p := range strings.Split(x, ",") {
				if strings.TrimSpace(p) != "" {
					paths = append(paths, p)
				}
			}
		case map[string]interface{}:
			for k, list := range x {
				if k != "paths" {
					return nil, true, newFieldError(joinPath(path, k), "unknown field")
				}
				items, ok := list.([]interface{})
				if !ok {
					return nil, true, newFieldError(joinPath(path, k), "must be a JSON array of field names")
				}
				for _, item := range items {
					p, ok := item.(string)
					if !ok {
						return nil, true, newFieldError(joinPath(path, k), "must be a JSON array of field names")
					}
					paths = append(paths, p)
				}
			}
		default:
			return nil, true, newFieldError(path, `must be a string of field names such as "name,body"`)
		}
		out := []interface{}{}
		for _, p := range paths {
			out = append(out, snakeCase(p))
		}
		return map[string]interface{}{"paths": out}, true, nil
	case "google.protobuf.Struct":
		if _, ok := v.(map[string]interface{}); !ok {
			return nil, true, newFieldError(path, "must be a JSON object")
		}
		return v, true, nil
	case "google.protobuf.ListValue":
		if _, ok := v.([]interface{}); !ok {
			return nil, true, newFieldError(path, "must be a JSON array")
		}
		return v, true, nil
	case "google.protobuf.Value", "google.protobuf.Any":
		return v, true, nil
	case "google.protobuf.Empty":
		obj, ok := v.(map[string]interface{})
		if !ok {
			return nil, true, newFieldError(orBody(path), "must be a JSON object")
		}
		for k := range obj {
			return nil, true, newFieldError(joinPath(path, k), "unknown field")
		}
		return v, true, nil
	}
	return nil, false, nil
}

// fieldPath resolves a dotted query parameter name ("paging.limit") to its
// fields, by proto or JSON name; nil when a part is unknown.
func (s *schema) fieldPath(message string, dotted string) []*descpb.FieldDescriptorProto {
	var out []*descpb.FieldDescriptorProto
	m := s.messages[message]
	for i, part := range strings.Split(dotted, ".") {
		if m == nil {
			return nil
		}
		f := fieldByJSONKey(m, part)
		if f == nil {
			return nil
		}
		out = append(out, f)
		if i < len(strings.Split(dotted, "."))-1 {
			if f.GetType() != descpb.FieldDescriptorProto_TYPE_MESSAGE || s.isMap(f) {
				return nil
			}
			m = s.messages[typeName(f.GetTypeName())]
		}
	}
	return out
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
