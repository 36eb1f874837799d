#include "server/domain/render.h"

#include "absl/strings/ascii.h"

namespace campaigns {

MessageTemplate MessageTemplate::Parse(
    const std::string& text,
    const std::map<std::string, std::string>& variable_mapping) {
  MessageTemplate t;
  size_t pos = 0;
  std::string literal;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    const size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) break;
    std::string name(
        absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2)));
    literal.append(text, pos, open - pos);
    pos = close + 2;
    if (name.empty()) {  // not a placeholder: keep it as written
      literal.append(text, open, close + 2 - open);
      continue;
    }
    auto mapped = variable_mapping.find(name);
    if (mapped != variable_mapping.end()) name = mapped->second;
    t.pieces_.push_back({std::move(literal), std::move(name)});
    literal.clear();
  }
  literal.append(text, pos, std::string::npos);
  t.pieces_.push_back({std::move(literal), ""});
  return t;
}

RenderResult MessageTemplate::Render(
    const std::map<std::string, std::string>& vars) const {
  RenderResult r;
  for (const Piece& p : pieces_) {
    r.text += p.literal;
    if (p.variable.empty()) continue;
    auto it = vars.find(p.variable);
    if (it == vars.end()) {
      r.missing = p.variable;
      r.text.clear();
      return r;
    }
    r.text += it->second;
  }
  return r;
}

std::vector<std::string> MessageTemplate::Variables() const {
  std::vector<std::string> out;
  for (const Piece& p : pieces_) {
    if (!p.variable.empty()) out.push_back(p.variable);
  }
  return out;
}

}  // namespace campaigns
