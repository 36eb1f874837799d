// Setting protobuf fields from command-line strings, by reflection, so that a
// campaignctl flag is bound to a request field with one line:
//
//   absl::Status s = SetFieldFromString(&request, "batch_delay", "1h30m");
//
// Accepted spellings, by field type:
//   string                 as given
//   int32/int64/uint*      decimal integer
//   bool                   true/false/yes/no/1/0
//   enum                   a value name as in the proto ("sms", "draft",
//                          "tier_1k"); the zero *_unspecified value is refused
//   Duration               absl::ParseDuration forms ("500ms", "2s", "1h30m");
//                          "" clears the field
//   Timestamp              RFC 3339 ("2024-05-01T09:00:00Z"); "" clears
//   map<string, string>    KEY=VALUE (one entry per call)
//   other messages         proto3 JSON (JsonStringToMessage)
// Repeated fields get one element appended per call; singular ones are set.

#ifndef CAMPAIGND_CLIENT_PROTO_FLAGS_H_
#define CAMPAIGND_CLIENT_PROTO_FLAGS_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace campaigns::client {

// Sets (or appends to) `field` of `message` from `value`. INVALID_ARGUMENT
// with a message fit for a user ("must be one of: sms, whatsapp, ...") when
// `value` does not parse.
absl::Status SetFieldFromString(google::protobuf::Message* message,
                                const google::protobuf::FieldDescriptor* field,
                                const std::string& value);
// As above, with the field looked up by proto name; NOT_FOUND if absent.
absl::Status SetFieldFromString(google::protobuf::Message* message,
                                absl::string_view field_name,
                                const std::string& value);

// The valid input names of `type`: every value except the zero one.
std::vector<std::string> EnumInputNames(
    const google::protobuf::EnumDescriptor* type);

// A short placeholder for help text: "sms|whatsapp|...", "DURATION",
// "RFC3339", "KEY=VALUE", "JSON", "INT", "ID", "TEXT".
std::string FieldValueHint(const google::protobuf::FieldDescriptor* field);

// A non-negative duration in absl::ParseDuration syntax; a bare number is
// taken as seconds.
absl::StatusOr<google::protobuf::Duration> ParseDurationArg(
    absl::string_view text);

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_PROTO_FLAGS_H_
