// Rendering one recipient's message from the campaign's text, email subject
// and HTML body, and template components.
//
// The text is the campaign's body or its template's body, with {{1}} /
// {{ name }} placeholders. A placeholder is looked up through the campaign's
// variable_mapping (placeholder -> variable name) when it has an entry, else
// by its own name, in the recipient's variables. The campaign's template
// components (WhatsApp, seed 003) are rendered the same way, each
// component's text and each parameter's text; as in Meta's Cloud API, the
// text's positional placeholders {{1}}..{{n}} then take the rendered
// parameters of the first "body" component, in order.
//
// An email's subject and HTML body are rendered like the text, except for
// the values put into them: HTML-escaped (& < > " ') in the HTML body, and
// with each CR, LF or CRLF replaced by a space in the subject (no value can
// start a header line).
//
//   MessageTemplate t = MessageTemplate::Parse("Hi {{name}}", mapping);
//   RenderResult r = t.Render(recipient.variables);
//   if (!r.missing.empty()) skip(recipient, "missing_variable");
//
//   // "Hi {{1}}" with [{"type": "body", "parameters": [{"type": "text",
//   // "text": "{{first}}"}]}] renders as "Hi Asha" for {first: Asha}.
//   MessageTemplate w = MessageTemplate::Parse("Hi {{1}}", components, {});
//
//   // Email: {subject: "Hi Asha", html: "<p>&lt;b&gt;</p>"} for
//   // {first: Asha, note: <b>}.
//   MessageTemplate e = MessageTemplate::Parse(
//       MessageContent{"Hi", "Hi {{first}}", "<p>{{note}}</p>"}, {}, {});
//
// Thread-safe (immutable once parsed).
#ifndef CAMPAIGND_SERVER_DOMAIN_RENDER_H_
#define CAMPAIGND_SERVER_DOMAIN_RENDER_H_

#include <map>
#include <string>
#include <vector>

#include "server/domain/model.h"

namespace campaigns {

struct RenderResult {
  std::string text;
  // Email: the rendered subject (one line) and HTML body; "" when the
  // message has none.
  std::string subject;
  std::string html;
  // The template components with their placeholders filled in (empty when
  // the campaign has none).
  std::vector<TemplateComponent> components;
  // The first variable the recipient lacks ("" when none): the message was
  // not rendered.
  std::string missing;
};

class MessageTemplate {
 public:
  static MessageTemplate Parse(
      const std::string& text,
      const std::map<std::string, std::string>& variable_mapping);
  static MessageTemplate Parse(
      const std::string& text, const std::vector<TemplateComponent>& components,
      const std::map<std::string, std::string>& variable_mapping);
  // The text, subject and HTML body of `content`, and `components`.
  static MessageTemplate Parse(
      const MessageContent& content,
      const std::vector<TemplateComponent>& components,
      const std::map<std::string, std::string>& variable_mapping);

  RenderResult Render(const std::map<std::string, std::string>& vars) const;

  // The variables a recipient must have (components, text, subject, HTML
  // body).
  std::vector<std::string> Variables() const;

 private:
  // How a value is put into the rendered output.
  enum class Escape {
    kNone,
    kHtml,     // & < > " ' as entities
    kOneLine,  // CR, LF and CRLF as one space each
  };
  struct Piece {
    std::string literal;   // text before the placeholder
    std::string variable;  // "" for the trailing literal or a position
    int position = 0;      // > 0: the n-th body parameter, not a variable
  };
  using Pieces = std::vector<Piece>;
  struct Component {
    TemplateComponent shape;  // texts replaced by the pieces below
    Pieces text;
    std::vector<Pieces> parameters;
  };

  static Pieces ParsePieces(
      const std::string& text,
      const std::map<std::string, std::string>& variable_mapping,
      int positions);
  // Appends `pieces` rendered to `out`, the values put in as `escape`
  // says; false (and `missing` set) when a variable is missing.
  // `positional` fills the pieces' positions.
  static bool RenderPieces(const Pieces& pieces,
                           const std::map<std::string, std::string>& vars,
                           const std::vector<std::string>& positional,
                           Escape escape, std::string* out,
                           std::string* missing);

  Pieces text_;
  Pieces subject_;
  Pieces html_;
  std::vector<Component> components_;
  int body_component_ = -1;  // index in components_ of the first body
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_RENDER_H_
