// campaignctl's output: JSON, `field: value` blocks and tables by reflection.
#include "client/output.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace campaigns::client {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kTimestamp[] = "google.protobuf.Timestamp";
constexpr char kDuration[] = "google.protobuf.Duration";

// Timestamps and durations print as one value, not as a nested block.
bool PrintsAsScalar(const Descriptor* d) {
  return d->full_name() == kTimestamp || d->full_name() == kDuration;
}

// Formats a Timestamp, a Duration or any other message (as compact JSON).
std::string FormatMessage(const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  if (PrintsAsScalar(d)) {
    int64_t seconds = r->GetInt64(m, d->FindFieldByName("seconds"));
    int32_t nanos = r->GetInt32(m, d->FindFieldByName("nanos"));
    if (d->full_name() == kDuration) {
      return absl::FormatDuration(absl::Seconds(seconds) +
                                  absl::Nanoseconds(nanos));
    }
    google::protobuf::Timestamp ts;
    ts.set_seconds(seconds);
    ts.set_nanos(nanos);
    return google::protobuf::util::TimeUtil::ToString(ts);
  }
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(m, &json).ok()) {
    return m.ShortDebugString();
  }
  return json;
}

// Formats one value of `field` (element `index` if repeated) on one line.
std::string FormatValue(const Message& m, const FieldDescriptor* field,
                        int index) {
  const Reflection* r = m.GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s =
          rep ? r->GetRepeatedString(m, field, index) : r->GetString(m, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        return absl::StrCat("<", s.size(), " bytes>");
      }
      return absl::StrReplaceAll(s, {{"\n", "\\n"}, {"\r", "\\r"}});
    }
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(m, field, index)
                              : r->GetInt32(m, field));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(m, field, index)
                              : r->GetInt64(m, field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(rep ? r->GetRepeatedUInt32(m, field, index)
                              : r->GetUInt32(m, field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r->GetRepeatedUInt64(m, field, index)
                              : r->GetUInt64(m, field));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(rep ? r->GetRepeatedDouble(m, field, index)
                              : r->GetDouble(m, field));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return absl::StrCat(rep ? r->GetRepeatedFloat(m, field, index)
                              : r->GetFloat(m, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, field, index) : r->GetBool(m, field))
                 ? "true"
                 : "false";
    case FieldDescriptor::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* v =
          rep ? r->GetRepeatedEnum(m, field, index) : r->GetEnum(m, field);
      if (v->number() == 0) {
        // What an unset value means where it means something.
        static const auto* const kZeroMeans =
            new std::map<std::string, std::string>{
                {"campaigns.v1.Suppression.channel", "all"}};
        auto it = kZeroMeans->find(field->full_name());
        if (it != kZeroMeans->end()) return it->second;
      }
      return v->name();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return FormatMessage(rep ? r->GetRepeatedMessage(m, field, index)
                               : r->GetMessage(m, field));
  }
  return "?";
}

// One line of a `name: value` block, or a nested block.
struct Entry {
  std::string name;
  std::string value;            // unless `block`
  std::vector<Entry> children;  // if `block`
  bool block = false;
};

std::vector<Entry> Entries(const Message& m);

Entry MapEntry(const Message& m, const FieldDescriptor* field) {
  const Reflection* r = m.GetReflection();
  Entry e{field->name(), "", {}, true};
  const FieldDescriptor* key = field->message_type()->map_key();
  const FieldDescriptor* value = field->message_type()->map_value();
  std::map<std::string, std::string> sorted;
  for (int i = 0; i < r->FieldSize(m, field); ++i) {
    const Message& item = r->GetRepeatedMessage(m, field, i);
    sorted[FormatValue(item, key, -1)] = FormatValue(item, value, -1);
  }
  for (auto& [k, v] : sorted) e.children.push_back({k, v, {}, false});
  return e;
}

std::vector<Entry> Entries(const Message& m) {
  const Reflection* r = m.GetReflection();
  const Descriptor* d = m.GetDescriptor();
  std::vector<Entry> entries;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* field = d->field(i);
    if (field->name() == "secret") continue;
    const bool is_message =
        field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    const bool nested = is_message && !PrintsAsScalar(field->message_type());
    if (field->is_map()) {
      if (r->FieldSize(m, field) > 0) entries.push_back(MapEntry(m, field));
    } else if (field->is_repeated()) {
      int n = r->FieldSize(m, field);
      if (n == 0) continue;
      if (!nested) {
        std::vector<std::string> values;
        for (int j = 0; j < n; ++j) values.push_back(FormatValue(m, field, j));
        entries.push_back(
            {field->name(), absl::StrJoin(values, ", "), {}, false});
        continue;
      }
      for (int j = 0; j < n; ++j) {
        entries.push_back({absl::StrCat(field->name(), "[", j, "]"), "",
                           Entries(r->GetRepeatedMessage(m, field, j)), true});
      }
    } else if (is_message) {
      if (!r->HasField(m, field)) continue;
      if (nested) {
        entries.push_back(
            {field->name(), "", Entries(r->GetMessage(m, field)), true});
      } else {
        entries.push_back(
            {field->name(), FormatValue(m, field, -1), {}, false});
      }
    } else {
      std::string value = FormatValue(m, field, -1);
      if (value.empty()) continue;
      entries.push_back({field->name(), std::move(value), {}, false});
    }
  }
  return entries;
}

void PrintEntries(const std::vector<Entry>& entries, int indent,
                  std::ostream& out) {
  size_t width = 0;
  for (const Entry& e : entries) {
    if (!e.block) width = std::max(width, e.name.size());
  }
  const std::string pad(indent, ' ');
  for (const Entry& e : entries) {
    if (e.block) {
      out << pad << e.name << ":\n";
      PrintEntries(e.children, indent + 2, out);
    } else {
      out << pad << e.name << ":" << std::string(width - e.name.size() + 1, ' ')
          << e.value << "\n";
    }
  }
}

const FieldDescriptor* Field(const Message& m, const std::string& name) {
  return m.GetDescriptor()->FindFieldByName(name);
}

}  // namespace

void PrintJson(const Message& message, std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = false;
  std::string json;
  google::protobuf::util::Status s =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  // Cannot happen for generated messages; keep the output valid JSON anyway.
  if (!s.ok()) json = "{\"printError\":\"cannot convert to JSON\"}";
  out << json << "\n";
}

void PrintFields(const Message& message, std::ostream& out) {
  PrintEntries(Entries(message), 0, out);
}

void PrintIds(const Message& request, const Message& response,
              std::ostream& out) {
  auto id_of = [](const Message& m) -> std::string {
    const FieldDescriptor* id = Field(m, "id");
    if (id == nullptr || id->is_repeated() ||
        id->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      return "";
    }
    return m.GetReflection()->GetString(m, id);
  };
  const FieldDescriptor* items = Field(response, "items");
  if (items != nullptr && items->is_repeated() &&
      items->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    const Reflection* r = response.GetReflection();
    for (int i = 0; i < r->FieldSize(response, items); ++i) {
      const std::string id = id_of(r->GetRepeatedMessage(response, items, i));
      if (!id.empty()) out << id << "\n";
    }
    return;
  }
  std::string id = id_of(response);
  // A response that wraps the object (RetryFailedResponse.campaign).
  for (int i = 0; id.empty() && i < response.GetDescriptor()->field_count();
       ++i) {
    const FieldDescriptor* f = response.GetDescriptor()->field(i);
    if (!f->is_repeated() &&
        f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        response.GetReflection()->HasField(response, f)) {
      id = id_of(response.GetReflection()->GetMessage(response, f));
    }
  }
  if (id.empty()) id = id_of(request);  // e.g. a delete: what was deleted
  if (!id.empty()) out << id << "\n";
}

std::string FormatPath(const Message& message, const std::string& path) {
  const Message* m = &message;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field = Field(*m, parts[i]);
    if (field == nullptr) return "?";
    const Reflection* r = m->GetReflection();
    if (field->is_repeated()) {
      std::vector<std::string> values;
      for (int j = 0; j < r->FieldSize(*m, field); ++j) {
        values.push_back(FormatValue(*m, field, j));
      }
      return values.empty() ? "-" : absl::StrJoin(values, ",");
    }
    const bool is_message =
        field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    if (is_message && !r->HasField(*m, field)) return "-";
    if (is_message && i + 1 < parts.size()) {
      m = &r->GetMessage(*m, field);
      continue;
    }
    std::string value = FormatValue(*m, field, -1);
    return value.empty() ? "-" : value;
  }
  return "-";
}

void PrintTable(const Message& list_response,
                const std::vector<Column>& columns, std::ostream& out) {
  const Reflection* r = list_response.GetReflection();
  const FieldDescriptor* items = Field(list_response, "items");
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  for (const Column& c : columns) header.push_back(c.header);
  rows.push_back(std::move(header));
  const int n = items == nullptr ? 0 : r->FieldSize(list_response, items);
  for (int i = 0; i < n; ++i) {
    const Message& item = r->GetRepeatedMessage(list_response, items, i);
    std::vector<std::string> row;
    for (const Column& c : columns) row.push_back(FormatPath(item, c.path));
    rows.push_back(std::move(row));
  }
  std::vector<size_t> widths(columns.size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size())
        line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out << line << "\n";
  }
  out << "page " << FormatPath(list_response, "page") << ", " << n << " of "
      << FormatPath(list_response, "total") << ", more: "
      << (FormatPath(list_response, "has_more") == "true" ? "yes" : "no")
      << "\n";
  std::string token = FormatPath(list_response, "next_page_token");
  if (token != "-" && token != "?") out << "next page token: " << token << "\n";
}

}  // namespace campaigns::client
