// Rendering one recipient's message from the campaign's text.
//
// The text is the campaign's body or its template's body, with {{1}} /
// {{ name }} placeholders. A placeholder is looked up through the campaign's
// variable_mapping (placeholder -> variable name) when it has an entry, else
// by its own name, in the recipient's variables.
//
//   MessageTemplate t = MessageTemplate::Parse("Hi {{name}}", mapping);
//   RenderResult r = t.Render(recipient.variables);
//   if (!r.missing.empty()) skip(recipient, "missing_variable");
//
// Thread-safe (immutable once parsed).
#ifndef CAMPAIGND_SERVER_DOMAIN_RENDER_H_
#define CAMPAIGND_SERVER_DOMAIN_RENDER_H_

#include <map>
#include <string>
#include <vector>

namespace campaigns {

struct RenderResult {
  std::string text;
  // The first variable the recipient lacks ("" when none): the message was
  // not rendered.
  std::string missing;
};

class MessageTemplate {
 public:
  static MessageTemplate Parse(
      const std::string& text,
      const std::map<std::string, std::string>& variable_mapping);

  RenderResult Render(const std::map<std::string, std::string>& vars) const;

  // The variables a recipient must have.
  std::vector<std::string> Variables() const;

 private:
  struct Piece {
    std::string literal;   // text before the placeholder
    std::string variable;  // "" for the trailing literal
  };
  std::vector<Piece> pieces_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_RENDER_H_
