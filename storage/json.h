// The JSON text every storage engine keeps maps, lists and template
// components as (TEXT columns, the same on SQLite and PostgreSQL). Readers
// are lenient: text that is not what they expect reads as empty.
// All functions are stateless and thread-safe.
#ifndef CAMPAIGND_STORAGE_JSON_H_
#define CAMPAIGND_STORAGE_JSON_H_

#include <map>
#include <string>
#include <vector>

#include "server/domain/model.h"

namespace campaigns::storage {

// Callers pass UTF-8 (validated where it enters); a bad byte anyway becomes
// U+FFFD rather than an exception on the writer thread.
std::string MapToJson(const std::map<std::string, std::string>& m);
std::map<std::string, std::string> MapFromJson(const std::string& json);
std::string ListToJson(const std::vector<std::string>& v);
std::vector<std::string> ListFromJson(const std::string& json);
std::string ComponentsToJson(const std::vector<TemplateComponent>& c);
std::vector<TemplateComponent> ComponentsFromJson(const std::string& json);
// {"key": {"k": "v"}}: a campaign's recipient_variables.
std::string NestedMapToJson(
    const std::map<std::string, std::map<std::string, std::string>>& m);
std::map<std::string, std::map<std::string, std::string>> NestedMapFromJson(
    const std::string& json);

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_JSON_H_
