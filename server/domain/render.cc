// Per-recipient rendering of a campaign's text, email subject and HTML body,
// and template components.
#include "server/domain/render.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace campaigns {
namespace {

void AppendHtmlEscaped(const std::string& value, std::string* out) {
  for (char ch : value) {
    switch (ch) {
      case '&':
        out->append("&amp;");
        break;
      case '<':
        out->append("&lt;");
        break;
      case '>':
        out->append("&gt;");
        break;
      case '"':
        out->append("&quot;");
        break;
      case '\'':
        out->append("&#39;");
        break;
      default:
        out->push_back(ch);
    }
  }
}

void AppendOneLine(const std::string& value, std::string* out) {
  for (size_t i = 0; i < value.size(); ++i) {
    const char ch = value[i];
    if (ch != '\r' && ch != '\n') {
      out->push_back(ch);
      continue;
    }
    if (ch == '\r' && i + 1 < value.size() && value[i + 1] == '\n') ++i;
    out->push_back(' ');
  }
}

}  // namespace

MessageTemplate::Pieces MessageTemplate::ParsePieces(
    const std::string& text,
    const std::map<std::string, std::string>& variable_mapping, int positions) {
  Pieces pieces;
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
    int position = 0;
    if (absl::SimpleAtoi(name, &position) && position >= 1 &&
        position <= positions) {
      pieces.push_back({std::move(literal), "", position});
      literal.clear();
      continue;
    }
    auto mapped = variable_mapping.find(name);
    if (mapped != variable_mapping.end()) name = mapped->second;
    pieces.push_back({std::move(literal), std::move(name), 0});
    literal.clear();
  }
  literal.append(text, pos, std::string::npos);
  pieces.push_back({std::move(literal), "", 0});
  return pieces;
}

MessageTemplate MessageTemplate::Parse(
    const std::string& text,
    const std::map<std::string, std::string>& variable_mapping) {
  return Parse(text, {}, variable_mapping);
}

MessageTemplate MessageTemplate::Parse(
    const std::string& text, const std::vector<TemplateComponent>& components,
    const std::map<std::string, std::string>& variable_mapping) {
  MessageContent content;
  content.text = text;
  return Parse(content, components, variable_mapping);
}

MessageTemplate MessageTemplate::Parse(
    const MessageContent& content,
    const std::vector<TemplateComponent>& components,
    const std::map<std::string, std::string>& variable_mapping) {
  MessageTemplate t;
  for (const TemplateComponent& c : components) {
    Component parsed;
    parsed.shape = c;
    parsed.text = ParsePieces(c.text, variable_mapping, 0);
    for (const TemplateParameter& p : c.parameters) {
      parsed.parameters.push_back(ParsePieces(p.text, variable_mapping, 0));
    }
    if (t.body_component_ < 0 && absl::EqualsIgnoreCase(c.type, "body")) {
      t.body_component_ = static_cast<int>(t.components_.size());
    }
    t.components_.push_back(std::move(parsed));
  }
  const int positions =
      t.body_component_ < 0
          ? 0
          : static_cast<int>(
                t.components_[t.body_component_].parameters.size());
  t.text_ = ParsePieces(content.text, variable_mapping, positions);
  t.subject_ = ParsePieces(content.subject, variable_mapping, positions);
  t.html_ = ParsePieces(content.html, variable_mapping, positions);
  return t;
}

bool MessageTemplate::RenderPieces(
    const Pieces& pieces, const std::map<std::string, std::string>& vars,
    const std::vector<std::string>& positional, Escape escape, std::string* out,
    std::string* missing) {
  auto append = [escape, out](const std::string& value) {
    switch (escape) {
      case Escape::kNone:
        out->append(value);
        return;
      case Escape::kHtml:
        AppendHtmlEscaped(value, out);
        return;
      case Escape::kOneLine:
        AppendOneLine(value, out);
        return;
    }
  };
  for (const Piece& p : pieces) {
    out->append(p.literal);
    if (p.position > 0) {
      append(positional[p.position - 1]);
      continue;
    }
    if (p.variable.empty()) continue;
    auto it = vars.find(p.variable);
    if (it == vars.end()) {
      *missing = p.variable;
      return false;
    }
    append(it->second);
  }
  return true;
}

RenderResult MessageTemplate::Render(
    const std::map<std::string, std::string>& vars) const {
  RenderResult r;
  const std::vector<std::string> none;
  r.components.reserve(components_.size());
  for (const Component& c : components_) {
    TemplateComponent out = c.shape;
    out.text.clear();
    bool ok =
        RenderPieces(c.text, vars, none, Escape::kNone, &out.text, &r.missing);
    for (size_t i = 0; ok && i < c.parameters.size(); ++i) {
      out.parameters[i].text.clear();
      ok = RenderPieces(c.parameters[i], vars, none, Escape::kNone,
                        &out.parameters[i].text, &r.missing);
    }
    if (!ok) {
      r.components.clear();
      return r;
    }
    r.components.push_back(std::move(out));
  }
  std::vector<std::string> positional;
  if (body_component_ >= 0) {
    for (const TemplateParameter& p :
         r.components[body_component_].parameters) {
      positional.push_back(p.text);
    }
  }
  if (!RenderPieces(text_, vars, positional, Escape::kNone, &r.text,
                    &r.missing) ||
      !RenderPieces(subject_, vars, positional, Escape::kOneLine, &r.subject,
                    &r.missing) ||
      !RenderPieces(html_, vars, positional, Escape::kHtml, &r.html,
                    &r.missing)) {
    r.text.clear();
    r.subject.clear();
    r.html.clear();
    r.components.clear();
  }
  return r;
}

std::vector<std::string> MessageTemplate::Variables() const {
  std::vector<std::string> out;
  auto add = [&out](const Pieces& pieces) {
    for (const Piece& p : pieces) {
      if (!p.variable.empty()) out.push_back(p.variable);
    }
  };
  for (const Component& c : components_) {
    add(c.text);
    for (const Pieces& p : c.parameters) add(p);
  }
  add(text_);
  add(subject_);
  add(html_);
  return out;
}

}  // namespace campaigns
