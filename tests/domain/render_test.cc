#include "server/domain/render.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace campaigns {
namespace {

TEST(RenderTest, PlaceholdersByNameOrThroughTheMapping) {
  MessageTemplate t = MessageTemplate::Parse(
      "Hi {{ name }}, code {{1}}. {{}} stays", {{"1", "code"}});
  RenderResult r = t.Render({{"name", "Ada"}, {"code", "X7"}});
  EXPECT_EQ(r.missing, "");
  EXPECT_EQ(r.text, "Hi Ada, code X7. {{}} stays");
  EXPECT_EQ(t.Variables(), (std::vector<std::string>{"name", "code"}));
}

TEST(RenderTest, AMissingVariableIsNamedAndNothingIsRendered) {
  MessageTemplate t = MessageTemplate::Parse("Hi {{name}} {{city}}", {});
  RenderResult r = t.Render({{"name", "Ada"}});
  EXPECT_EQ(r.missing, "city");
  EXPECT_EQ(r.text, "");
}

TEST(RenderTest, TextWithoutPlaceholdersAndUnclosedBraces) {
  EXPECT_EQ(MessageTemplate::Parse("plain", {}).Render({}).text, "plain");
  EXPECT_EQ(MessageTemplate::Parse("a {{b", {}).Render({}).text, "a {{b");
  EXPECT_EQ(MessageTemplate::Parse("", {}).Render({}).text, "");
}

TEST(RenderTest, ComponentsAreRenderedAndFillTheTextsPositions) {
  // Seed 003: the template's body has {{1}}; the campaign's body component
  // gives its first parameter as {{first}}, a variable of the recipient.
  std::vector<TemplateComponent> components = {
      {"header", "", "For {{ city }}", {}, "", 0},
      {"body",
       "",
       "",
       {{"text", "{{first}}", ""}, {"text", "{{2}}", ""}},
       "",
       0},
      {"button", "", "", {{"payload", "", "STOP"}}, "quick_reply", 0}};
  MessageTemplate t = MessageTemplate::Parse("Hi {{1}}, code {{2}}", components,
                                             {{"2", "code"}});
  RenderResult r =
      t.Render({{"first", "Asha"}, {"code", "X7"}, {"city", "Pune"}});
  EXPECT_EQ(r.missing, "");
  EXPECT_EQ(r.text, "Hi Asha, code X7");
  ASSERT_EQ(r.components.size(), 3u);
  EXPECT_EQ(r.components[0].text, "For Pune");
  EXPECT_EQ(r.components[1].type, "body");
  EXPECT_EQ(r.components[1].parameters[0].text, "Asha");
  EXPECT_EQ(r.components[1].parameters[1].text, "X7");
  EXPECT_EQ(r.components[2].sub_type, "quick_reply");
  EXPECT_EQ(r.components[2].parameters[0].payload, "STOP");
  EXPECT_EQ(t.Variables(), (std::vector<std::string>{"city", "first", "code"}));
}

TEST(RenderTest, AVariableMissingFromAComponentSkipsTheMessage) {
  MessageTemplate t = MessageTemplate::Parse(
      "Hi {{1}}", {{"body", "", "", {{"text", "{{first}}", ""}}, "", 0}}, {});
  RenderResult r = t.Render({{"1", "ignored: the parameter fills {{1}}"}});
  EXPECT_EQ(r.missing, "first");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(r.components.empty());
}

TEST(RenderTest, PositionsBeyondTheBodyParametersAreVariables) {
  MessageTemplate t = MessageTemplate::Parse(
      "{{1}} {{2}}", {{"BODY", "", "", {{"text", "a", ""}}, "", 0}}, {});
  EXPECT_EQ(t.Render({{"2", "b"}}).text, "a b");
  EXPECT_EQ(t.Render({}).missing, "2");
}

// --- Email: subject and HTML body ------------------------------------------

MessageContent Email(std::string text, std::string subject, std::string html) {
  MessageContent c;
  c.text = std::move(text);
  c.subject = std::move(subject);
  c.html = std::move(html);
  return c;
}

TEST(RenderEmailTest, SubjectAndHtmlHaveTheBodysPlaceholders) {
  MessageTemplate t = MessageTemplate::Parse(
      Email("Hi {{name}}", "{{ name }}, order {{1}} shipped",
            "<p>Hi {{name}}, order <b>{{1}}</b> ships to {{city}}</p>"),
      {}, {{"1", "order"}});
  RenderResult r =
      t.Render({{"name", "Ann"}, {"order", "A-7"}, {"city", "Oslo"}});
  EXPECT_EQ(r.missing, "");
  EXPECT_EQ(r.text, "Hi Ann");
  EXPECT_EQ(r.subject, "Ann, order A-7 shipped");
  EXPECT_EQ(r.html, "<p>Hi Ann, order <b>A-7</b> ships to Oslo</p>");
  EXPECT_EQ(t.Variables(), (std::vector<std::string>{"name", "name", "order",
                                                     "name", "order", "city"}));
}

TEST(RenderEmailTest, ValuesInTheHtmlBodyAreEscapedButItsMarkupIsNot) {
  MessageTemplate t = MessageTemplate::Parse(
      Email("{{v}}", "{{v}}", "<p class=\"x\">{{v}}</p>"), {}, {});
  RenderResult r = t.Render({{"v", "<script>alert('x & \"y\"')</script>"}});
  EXPECT_EQ(r.html,
            "<p class=\"x\">&lt;script&gt;alert(&#39;x &amp; "
            "&quot;y&quot;&#39;)&lt;/script&gt;</p>");
  // The text part and the subject take the value as it is.
  EXPECT_EQ(r.text, "<script>alert('x & \"y\"')</script>");
  EXPECT_EQ(r.subject, "<script>alert('x & \"y\"')</script>");
}

TEST(RenderEmailTest, LineBreaksInSubjectValuesBecomeSpaces) {
  MessageTemplate t = MessageTemplate::Parse(
      Email("{{v}}", "Hi {{v}}!", "<p>{{v}}</p>"), {}, {});
  RenderResult r = t.Render({{"v", "Ann\r\nBcc: all@example.com\nX\rY"}});
  EXPECT_EQ(r.subject, "Hi Ann Bcc: all@example.com X Y!");
  EXPECT_EQ(r.subject.find_first_of("\r\n"), std::string::npos);
  // Elsewhere line breaks are content.
  EXPECT_EQ(r.text, "Ann\r\nBcc: all@example.com\nX\rY");
  EXPECT_EQ(r.html, "<p>Ann\r\nBcc: all@example.com\nX\rY</p>");
}

TEST(RenderEmailTest, AVariableMissingFromTheSubjectOrHtmlSkipsTheMessage) {
  MessageTemplate subject =
      MessageTemplate::Parse(Email("Hi", "For {{vip}}", ""), {}, {});
  RenderResult r = subject.Render({{"name", "Ann"}});
  EXPECT_EQ(r.missing, "vip");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.subject, "");

  MessageTemplate html =
      MessageTemplate::Parse(Email("Hi", "Hello", "<p>{{code}}</p>"), {}, {});
  r = html.Render({});
  EXPECT_EQ(r.missing, "code");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.subject, "");
  EXPECT_EQ(r.html, "");
  EXPECT_EQ(html.Variables(), (std::vector<std::string>{"code"}));
}

TEST(RenderEmailTest, WithoutSubjectAndHtmlBothRenderEmpty) {
  RenderResult r = MessageTemplate::Parse(Email("Hi {{n}}", "", ""), {}, {})
                       .Render({{"n", "<Ann>"}});
  EXPECT_EQ(r.text, "Hi <Ann>");
  EXPECT_EQ(r.subject, "");
  EXPECT_EQ(r.html, "");
}

}  // namespace
}  // namespace campaigns
