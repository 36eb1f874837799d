#include "server/domain/render.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace campaigns
