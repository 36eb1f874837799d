#include "storage/json.h"

#include <nlohmann/json.hpp>

#include "server/domain/import_rows.h"

namespace campaigns::storage {

std::string MapToJson(const std::map<std::string, std::string>& m) {
  return VariablesToJson(m);
}

namespace {

// The empty values most rows hold, recognised without a parse (they are
// read on every campaign and recipient read).
bool EmptyJson(const std::string& json) {
  return json.empty() || json == "{}" || json == "[]" || json == "null";
}

}  // namespace

std::map<std::string, std::string> MapFromJson(const std::string& json) {
  if (EmptyJson(json)) return {};
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) return {};
  return j.get<std::map<std::string, std::string>>();
}

std::string ListToJson(const std::vector<std::string>& v) {
  return nlohmann::json(v).dump(-1, ' ', false,
                                nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> ListFromJson(const std::string& json) {
  if (EmptyJson(json)) return {};
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_array()) return {};
  return j.get<std::vector<std::string>>();
}

std::string ComponentsToJson(const std::vector<TemplateComponent>& comps) {
  nlohmann::json out = nlohmann::json::array();
  for (const TemplateComponent& c : comps) {
    nlohmann::json params = nlohmann::json::array();
    for (const TemplateParameter& p : c.parameters) {
      nlohmann::json param = {{"type", p.type}, {"text", p.text}};
      if (!p.payload.empty()) param["payload"] = p.payload;
      params.push_back(std::move(param));
    }
    nlohmann::json comp = {{"type", c.type},
                           {"format", c.format},
                           {"text", c.text},
                           {"parameters", params}};
    if (!c.sub_type.empty()) comp["sub_type"] = c.sub_type;
    if (c.index != 0) comp["index"] = c.index;
    out.push_back(std::move(comp));
  }
  return out.dump();
}

std::vector<TemplateComponent> ComponentsFromJson(const std::string& json) {
  std::vector<TemplateComponent> out;
  if (EmptyJson(json)) return out;
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_array()) return out;
  for (const nlohmann::json& c : j) {
    TemplateComponent comp;
    comp.type = c.value("type", "");
    comp.format = c.value("format", "");
    comp.text = c.value("text", "");
    for (const nlohmann::json& p :
         c.value("parameters", nlohmann::json::array())) {
      comp.parameters.push_back(
          {p.value("type", ""), p.value("text", ""), p.value("payload", "")});
    }
    comp.sub_type = c.value("sub_type", "");
    comp.index = c.value("index", 0);
    out.push_back(std::move(comp));
  }
  return out;
}

std::string NestedMapToJson(
    const std::map<std::string, std::map<std::string, std::string>>& m) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, inner] : m) out[key] = inner;
  return out.dump();
}

std::map<std::string, std::map<std::string, std::string>> NestedMapFromJson(
    const std::string& json) {
  std::map<std::string, std::map<std::string, std::string>> out;
  if (EmptyJson(json)) return out;
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [key, inner] : j.items()) {
    if (!inner.is_object()) continue;
    for (const auto& [k, v] : inner.items()) {
      if (v.is_string()) out[key][k] = v.get<std::string>();
    }
  }
  return out;
}

}  // namespace campaigns::storage
