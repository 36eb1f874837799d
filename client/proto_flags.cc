// Command-line strings into protobuf request fields, by reflection.
#include "client/proto_flags.h"

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace campaigns::client {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool IsDuration(const Descriptor* d) {
  return d->full_name() == "google.protobuf.Duration";
}
bool IsTimestamp(const Descriptor* d) {
  return d->full_name() == "google.protobuf.Timestamp";
}

template <typename T>
absl::StatusOr<T> ParseNumber(absl::string_view text) {
  T value;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a valid integer"));
  }
  return value;
}

// Fills `out`, a fresh message of `field`'s message type, from `value`.
absl::Status ParseMessage(const FieldDescriptor* field,
                          const std::string& value, Message* out) {
  const Descriptor* type = field->message_type();
  if (IsDuration(type)) {
    absl::StatusOr<google::protobuf::Duration> d = ParseDurationArg(value);
    if (!d.ok()) return d.status();
    out->CopyFrom(*d);
    return absl::OkStatus();
  }
  if (IsTimestamp(type)) {
    google::protobuf::Timestamp ts;
    absl::Time day;
    std::string error;
    if (google::protobuf::util::TimeUtil::FromString(value, &ts)) {
      out->CopyFrom(ts);
      return absl::OkStatus();
    }
    if (absl::ParseTime("%Y-%m-%d", value, absl::UTCTimeZone(), &day,
                        &error)) {  // a date: its midnight, UTC
      ts.set_seconds(absl::ToUnixSeconds(day));
      out->CopyFrom(ts);
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("\"", value,
                     "\" is not an RFC 3339 timestamp (e.g. "
                     "2024-05-01T09:00:00Z) or a date (e.g. 2024-05-01)"));
  }
  google::protobuf::util::Status s =
      google::protobuf::util::JsonStringToMessage(value, out);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid ", type->name(),
                     " JSON object: ", std::string(s.message())));
  }
  return absl::OkStatus();
}

absl::Status SetMapEntry(Message* message, const FieldDescriptor* field,
                         const std::string& value) {
  size_t eq = value.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", value, "\" is not KEY=VALUE"));
  }
  Message* entry = message->GetReflection()->AddMessage(message, field);
  const Descriptor* type = entry->GetDescriptor();
  const Reflection* r = entry->GetReflection();
  r->SetString(entry, type->map_key(), value.substr(0, eq));
  r->SetString(entry, type->map_value(), value.substr(eq + 1));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<google::protobuf::Duration> ParseDurationArg(
    absl::string_view text) {
  absl::Duration d;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a duration (e.g. 500ms, 2s, 1h30m)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is negative"));
  }
  google::protobuf::Duration out;
  absl::Duration rest = d;
  out.set_seconds(absl::IDivDuration(rest, absl::Seconds(1), &rest));
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
  return out;
}

std::vector<std::string> EnumInputNames(
    const google::protobuf::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(type->value(i)->name());
  }
  return names;
}

absl::Status SetFieldFromString(Message* message, const FieldDescriptor* field,
                                const std::string& value) {
  const Reflection* r = message->GetReflection();
  const bool repeated = field->is_repeated();
  if (field->is_map()) return SetMapEntry(message, field, value);
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      repeated ? r->AddString(message, field, value)
               : r->SetString(message, field, value);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32: {
      absl::StatusOr<int32_t> v = ParseNumber<int32_t>(value);
      if (!v.ok()) return v.status();
      repeated ? r->AddInt32(message, field, *v)
               : r->SetInt32(message, field, *v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      absl::StatusOr<int64_t> v = ParseNumber<int64_t>(value);
      if (!v.ok()) return v.status();
      repeated ? r->AddInt64(message, field, *v)
               : r->SetInt64(message, field, *v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      absl::StatusOr<uint32_t> v = ParseNumber<uint32_t>(value);
      if (!v.ok()) return v.status();
      repeated ? r->AddUInt32(message, field, *v)
               : r->SetUInt32(message, field, *v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      absl::StatusOr<uint64_t> v = ParseNumber<uint64_t>(value);
      if (!v.ok()) return v.status();
      repeated ? r->AddUInt64(message, field, *v)
               : r->SetUInt64(message, field, *v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", value, "\" is not a number"));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
        repeated ? r->AddFloat(message, field, static_cast<float>(v))
                 : r->SetFloat(message, field, static_cast<float>(v));
      } else {
        repeated ? r->AddDouble(message, field, v)
                 : r->SetDouble(message, field, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!absl::SimpleAtob(value, &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", value, "\" is not true or false"));
      }
      repeated ? r->AddBool(message, field, v) : r->SetBool(message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* v =
          field->enum_type()->FindValueByName(value);
      if (v == nullptr || v->number() == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", value, "\" is not allowed; use one of: ",
            absl::StrJoin(EnumInputNames(field->enum_type()), ", ")));
      }
      repeated ? r->AddEnum(message, field, v) : r->SetEnum(message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!repeated && value.empty() &&
          (IsDuration(field->message_type()) ||
           IsTimestamp(field->message_type()))) {
        r->ClearField(message, field);
        return absl::OkStatus();
      }
      std::unique_ptr<Message> parsed(
          r->GetMessageFactory()->GetPrototype(field->message_type())->New());
      absl::Status s = ParseMessage(field, value, parsed.get());
      if (!s.ok()) return s;
      if (repeated) {
        r->AddMessage(message, field)->CopyFrom(*parsed);
      } else {
        r->MutableMessage(message, field)->CopyFrom(*parsed);
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError(
      absl::StrCat("field ", field->name(), " has an unsupported type"));
}

absl::Status SetFieldFromString(Message* message, absl::string_view field_name,
                                const std::string& value) {
  const FieldDescriptor* field =
      message->GetDescriptor()->FindFieldByName(std::string(field_name));
  if (field == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(message->GetTypeName(), " has no field ", field_name));
  }
  return SetFieldFromString(message, field, value);
}

std::string FieldValueHint(const FieldDescriptor* field) {
  if (field->is_map()) return "KEY=VALUE";
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrJoin(EnumInputNames(field->enum_type()), "|");
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (IsDuration(field->message_type())) return "DURATION";
      if (IsTimestamp(field->message_type())) return "RFC3339|DATE";
      return "JSON";
    case FieldDescriptor::CPPTYPE_STRING: {
      const std::string& name = field->name();
      if (name == "id" || absl::EndsWith(name, "_id") ||
          absl::EndsWith(name, "_ids")) {
        return "ID";
      }
      return "TEXT";
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      return "BOOL";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "NUMBER";
    default:
      return "INT";
  }
}

}  // namespace campaigns::client
