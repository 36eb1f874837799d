// The per-call state machines of the async server and the Registrar.
#include "server/api/call.h"

#include <google/protobuf/stubs/common.h>
#include <google/protobuf/unknown_field_set.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"

namespace campaigns::api {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// The path of the first string field of `bytes` (a message of type `type`)
// that is not valid UTF-8, or "" if there is none.
std::string FindInvalidUtf8(const std::string& bytes, const Descriptor* type,
                            const std::string& prefix, int depth) {
  UnknownFieldSet fields;
  if (depth > 16 || !fields.ParseFromString(bytes)) return "";
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    if (f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const FieldDescriptor* fd = type->FindFieldByNumber(f.number());
    if (fd == nullptr) continue;
    const std::string path = prefix + fd->name();
    if (fd->type() == FieldDescriptor::TYPE_STRING &&
        !google::protobuf::internal::IsStructurallyValidUTF8(
            f.length_delimited().data(),
            static_cast<int>(f.length_delimited().size()))) {
      return path;
    }
    if (fd->type() == FieldDescriptor::TYPE_MESSAGE) {
      std::string inner = FindInvalidUtf8(
          f.length_delimited(), fd->message_type(), path + ".", depth + 1);
      if (!inner.empty()) return inner;
    }
  }
  return "";
}

[[noreturn]] void RegistrationError(const std::string& what) {
  std::cerr << "campaignd: method registration: " << what << "\n";
  std::abort();
}

}  // namespace

absl::Status ParseRequest(grpc::ByteBuffer* raw,
                          google::protobuf::Message* request) {
  grpc::Slice slice;
  std::string bytes;
  if (raw->Valid()) {
    if (!raw->DumpToSingleSlice(&slice).ok()) {
      return errors::InvalidField("request", "could not be read");
    }
    bytes.assign(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  if (request->ParseFromString(bytes)) return absl::OkStatus();
  const std::string field =
      FindInvalidUtf8(bytes, request->GetDescriptor(), "", 0);
  if (!field.empty()) return errors::InvalidField(field, "is not valid UTF-8");
  return errors::InvalidField(
      "request",
      absl::StrCat("is not a valid ", request->GetDescriptor()->full_name(),
                   " message"));
}

grpc::ByteBuffer SerializeResponse(const google::protobuf::Message& response) {
  const std::string bytes = response.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

const google::protobuf::MethodDescriptor* Registrar::Find(
    RawService* service, const std::string& name,
    const google::protobuf::Descriptor* in,
    const google::protobuf::Descriptor* out, bool client_streaming) {
  const google::protobuf::MethodDescriptor* m =
      service->descriptor()->FindMethodByName(name);
  if (m == nullptr) {
    RegistrationError(absl::StrCat(service->descriptor()->full_name(),
                                   " has no method ", name));
  }
  if (in != nullptr &&
      (m->input_type() != in || m->output_type() != out ||
       m->client_streaming() != client_streaming || m->server_streaming())) {
    RegistrationError(absl::StrCat(
        m->full_name(), " does not have the handler's kind and types"));
  }
  for (const auto& [s, n] : registered_) {
    if (s == service && n == name) {
      RegistrationError(absl::StrCat(m->full_name(), " registered twice"));
    }
  }
  registered_.emplace_back(service, name);
  return m;
}

void Registrar::CheckComplete() const {
  std::vector<RawService*> services;
  for (const auto& [s, n] : registered_) {
    if (std::find(services.begin(), services.end(), s) == services.end()) {
      services.push_back(s);
    }
  }
  for (RawService* s : services) {
    for (int i = 0; i < s->descriptor()->method_count(); ++i) {
      const std::string& name = s->descriptor()->method(i)->name();
      bool found = false;
      for (const auto& [rs, n] : registered_) found |= rs == s && n == name;
      if (!found) {
        RegistrationError(absl::StrCat(s->descriptor()->method(i)->full_name(),
                                       " has no handler"));
      }
    }
  }
}

}  // namespace campaigns::api
