// Checks of contact fields shared by the ContactService handlers and
// ContactImport. Private to server/api.
#ifndef CAMPAIGND_SERVER_API_CONTACT_FIELDS_H_
#define CAMPAIGND_SERVER_API_CONTACT_FIELDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/repeated_field.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"

namespace campaigns::api {

inline constexpr size_t kMaxTagLength = 64;

// Tags as given: each non-empty and at most kMaxTagLength bytes, at most
// kMaxListEntries of them. The Store sorts and de-duplicates.
inline absl::StatusOr<std::vector<std::string>> TagsFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& tags,
    const char* field) {
  if (static_cast<size_t>(tags.size()) > kMaxListEntries) {
    return errors::InvalidField(field, "has too many entries");
  }
  std::vector<std::string> out;
  for (const std::string& tag : tags) {
    if (tag.empty()) return errors::InvalidField(field, "must not be empty");
    if (tag.size() > kMaxTagLength) {
      return errors::InvalidField(
          field, absl::StrCat("tag ", errors::Quote(tag), " is longer than ",
                              kMaxTagLength, " characters"));
    }
    out.push_back(tag);
  }
  return out;
}

// Why the attribute `key` = `value` cannot be stored; empty when it can.
inline std::string AttributeProblem(const std::string& key,
                                    const std::string& value) {
  if (key.empty()) return "keys must not be empty";
  if (key.size() > kMaxShortText) {
    return absl::StrCat("key ", errors::Quote(key), " is longer than ",
                        kMaxShortText, " characters");
  }
  if (value.size() > kMaxAttributeValueLength) {
    return absl::StrCat("the value of ", errors::Quote(key), " is longer than ",
                        kMaxAttributeValueLength, " characters");
  }
  return "";
}

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_CONTACT_FIELDS_H_
